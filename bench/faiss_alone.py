"""The FAISS section of ``rag bench``: exact search (IndexFlatIP) beside HNSW on random unit vectors, one
query at a time: build time, latency and HNSW's recall at a sweep of efSearch values."""

from __future__ import annotations

import gc
import time
from typing import Any, Callable, Sequence

import numpy as np

from bench.measure import ms_cell as _ms, percentiles


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



def run(ctx) -> None:
    plan = ctx.plan
    ctx.on_stage(f"FAISS at {plan.faiss_vectors:,} random vectors")
    ctx.report["faiss"] = faiss_exact_vs_hnsw(plan.faiss_vectors, ctx.embedder.dimension, plan.faiss_queries, 10,
                                              ctx.params.hnsw_m, 80, plan.faiss_ef, on_stage=ctx.on_stage)
    if plan.faiss_vectors < 1_000_000:
        ctx.notes.append(f"FAISS exact vs HNSW on {plan.faiss_vectors:,} vectors (--quick), not 1M: run the full bench for 1M")
    ctx.notes.append("FAISS vectors are random unit vectors (the hardest case for HNSW: no cluster structure); "
                     "latency is one query at a time, as the server searches.")


def print_section(report: dict[str, Any], console) -> None:
    from rich.table import Table

    f = report.get("faiss")
    if not f:
        return
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
