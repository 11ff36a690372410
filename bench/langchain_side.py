"""The LangChain section of ``rag bench``: LangChain's usual set-up (RecursiveCharacterTextSplitter 1000/200,
its FAISS vector store) beside our retriever, on the same articles with the same embedding model: indexing
time, query latency and hit@4 on the answerable eval questions."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from bench.backends import is_st, langchain_embeddings, query_cache
from bench.measure import answerable, hit_rate, ms_cell as _ms, percentiles
from bench.plan import MODES
from rag.schema import Document

LANGCHAIN_INSTALL = "pip install -e '.[bench]'"


def langchain_available() -> tuple[bool, str]:
    try:
        from langchain_community.vectorstores import FAISS  # noqa: F401
        from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: F401
    except ImportError as e:
        return False, f"{e}"
    try:
        from langchain_huggingface import HuggingFaceEmbeddings  # noqa: F401
    except ImportError:
        try:
            from langchain_community.embeddings import HuggingFaceEmbeddings  # noqa: F401
        except ImportError as e:
            return False, f"{e}"
    return True, ""


def langchain_compare(documents: Sequence[Document], items, model_path: str, embedder, retriever,
                      ours: dict[str, Any], embeddings: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """LangChain's usual set-up beside ours: questions are asked of both in turn (interleaved), so a
    busy machine slows both alike. Our query-vector cache is cleared before each of our queries.
    ``embeddings(embedder)``, when given, makes LangChain's ``Embeddings`` (else ``HuggingFaceEmbeddings``
    loads ``model_path``)."""
    ok, why = langchain_available()
    if not ok:
        return {"available": False, "skipped": f"LangChain is not installed ({why}); install it with `{LANGCHAIN_INSTALL}`"}
    import warnings

    warnings.filterwarnings("ignore", module="langchain.*")
    warnings.filterwarnings("ignore", message=".*langchain.*", category=DeprecationWarning)
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t = time.perf_counter()
    if embeddings is not None:
        lc_embeddings = embeddings(embedder)
        emb_from = f"langchain_core Embeddings over our own {getattr(embedder, 'backend', '')} engine (bench/backends.py)"
    else:
        try:
            from langchain_huggingface import HuggingFaceEmbeddings

            emb_from = "langchain_huggingface"
        except ImportError:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from langchain_community.embeddings import HuggingFaceEmbeddings
            emb_from = "langchain_community.embeddings (the same class before it moved to langchain-huggingface)"
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lc_embeddings = HuggingFaceEmbeddings(model_name=model_path)
    embeddings = lc_embeddings
    model_load = time.perf_counter() - t
    embeddings.embed_query("warm-up")
    ans = answerable(items)
    t0 = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    docs = splitter.create_documents([d.text for d in documents], metadatas=[{"doc_id": d.doc_id} for d in documents])
    t1 = time.perf_counter()
    store = FAISS.from_documents(docs, embeddings)
    t2 = time.perf_counter()
    texts, lat = [], []
    our_texts: dict[str, list] = {m: [] for m in MODES}
    our_lat: dict[str, list] = {m: [] for m in MODES}
    cache = query_cache(embedder)
    for it in ans:
        for mode in MODES:
            if cache is not None:
                cache.clear()
            t = time.perf_counter()
            hits = retriever.search(it.question, k=4, mode=mode)
            our_lat[mode].append((time.perf_counter() - t) * 1000)
            our_texts[mode].append([h.chunk.text for h in hits])
        t = time.perf_counter()
        found = store.similarity_search(it.question, k=4)
        lat.append((time.perf_counter() - t) * 1000)
        texts.append([d.page_content for d in found])
    for mode in MODES:
        ours[f"hit@4_{mode}"] = hit_rate(our_texts[mode], ans, 4)
        ours[f"query_ms_{mode}"] = percentiles(our_lat[mode])
    max_tokens = embedder.max_tokens
    too_long = sum(1 for d in docs if embedder.count_tokens(d.page_content) > max_tokens)
    return {
        "available": True, "embeddings_class": emb_from, "model": model_path,
        "splitter": "RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)", "k": 4,
        "vector_store": "langchain_community FAISS (defaults: IndexFlatL2, vectors not normalised)",
        "model_load_s": round(model_load, 2), "chunks": len(docs),
        "chunks_over_model_limit": too_long, "model_limit_tokens": max_tokens,
        "index_s": round(t2 - t0, 3), "split_s": round(t1 - t0, 3), "embed_and_faiss_s": round(t2 - t1, 3),
        "chunks_per_s": round(len(docs) / (t2 - t0), 1), "query_ms": percentiles(lat),
        "hit@4": hit_rate(texts, ans, 4), "questions": len(ans), "ours": ours,
    }


def run(ctx) -> None:
    from rag.config import OFFLINE_EMBED_MODEL
    from rag.embed.embedders import offline_model_path
    from rag.retrieve.retriever import FusionParams, Retriever

    settings, embedder, report = ctx.settings, ctx.embedder, ctx.report
    ctx.on_stage("LangChain FAISS vector store on the same articles")
    retriever = Retriever(ctx.shipped_store, embedder, FusionParams.from_settings(settings))
    ours: dict[str, Any] = {"index_s": ctx.shipped["seconds"], "chunks": ctx.shipped["chunks"],
                            "chunks_per_s": ctx.indexing[0]["chunks_per_s"], "k": 4}
    if is_st(embedder):
        lc_model = offline_model_path() if embedder.model_id == OFFLINE_EMBED_MODEL else settings.embed_model
        report["langchain"] = langchain_compare(ctx.documents, ctx.items, lc_model, embedder, retriever, ours)
    else:  # the packaged engine: LangChain gets the same engine behind its Embeddings interface
        report["langchain"] = langchain_compare(ctx.documents, ctx.items, embedder.model_id, embedder, retriever, ours,
                                                embeddings=langchain_embeddings)
    if not report["langchain"]["available"]:
        ctx.notes.append(f"LangChain comparison skipped: {report['langchain']['skipped']}")


def print_section(report: dict[str, Any], console) -> None:
    from rich.table import Table

    lc = report.get("langchain")
    if not lc:
        return
    if not lc.get("available"):
        console.print(f"[yellow]LangChain comparison skipped:[/] {lc['skipped']}")
    else:
        o = lc["ours"]
        t = Table(title=f"Beside LangChain: same articles, same model, k=4, {lc['questions']} answerable questions")
        for c in ("system", "chunks", "index s", "chunks/s", "query p50 ms", "query p95 ms", "hit@4"):
            t.add_column(c, justify="right" if c != "system" else "left")
        t.add_row("LangChain FAISS + RecursiveCharacterTextSplitter(1000/200)", str(lc["chunks"]),
                  f"{lc['index_s']:.2f}", f"{lc['chunks_per_s']:.1f}", _ms(lc["query_ms"]), _ms(lc["query_ms"], "p95"),
                  f"{lc['hit@4']:.3f}")
        for mode in ("hybrid", "dense", "bm25"):
            t.add_row(f"ours, {mode}", str(o["chunks"]), f"{o['index_s']:.2f}", f"{o['chunks_per_s']:.1f}",
                      _ms(o[f"query_ms_{mode}"]), _ms(o[f"query_ms_{mode}"], "p95"), f"{o[f'hit@4_{mode}']:.3f}")
        console.print(t)
        console.print(f"[dim]LangChain chunks longer than the model's {lc['model_limit_tokens']} tokens "
                      f"(their tail is not embedded): {lc['chunks_over_model_limit']} of {lc['chunks']}[/]")
