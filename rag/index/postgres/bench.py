"""pgvector beside FAISS on synthetic vectors: build time, HNSW recall@10 against exact search, latency.

For the ``rag bench`` Postgres section (issue 13; bench/pg.py). The full run uses 100k and 1M
vectors; run it small while developing::

    python -m rag.index.postgres.bench postgresql://... 5000
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from rag.index.postgres.db import Database
from rag.index.postgres.store import vector_text


def _unit(rng, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _mixed(rng, n: int, anchors: np.ndarray, noise: float = 0.1) -> np.ndarray:
    """``n`` unit vectors shaped like real embeddings: each a random blend of two anchor vectors (the
    articles' sentences embedded by the model) plus a little noise, so they fill the narrow region of
    the sphere that text embeddings occupy instead of the whole sphere (random vectors: HNSW's worst case)."""
    a = anchors[rng.integers(0, len(anchors), n)]
    b = anchors[rng.integers(0, len(anchors), n)]
    t = rng.random((n, 1), dtype=np.float32)
    v = t * a + (1 - t) * b
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v += rng.standard_normal(v.shape).astype(np.float32) * (noise / np.sqrt(anchors.shape[1]))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


SWEEP = (40, 128, 400)  # ef_search values measured besides the store's


def pgvector_bench(db: Database, n: int, dim: int = 384, n_queries: int = 50, k: int = 10,
                   ef_search: int = 128, seed: int = 0, sweep: tuple[int, ...] = SWEEP,
                   anchors: np.ndarray | None = None) -> dict:
    """Load ``n`` random unit vectors into a scratch table, build HNSW (m=16, ef_construction=64),
    and compare pgvector and FAISS (HNSW, m=32) against exact search. The top-level figures are at
    ``ef_search`` (the stores' default, ``Settings.hnsw_ef_search``); ``sweep`` holds recall and latency
    at other values (the trade-off a deployment tunes). With ``anchors`` (real embeddings, e.g. the
    articles' sentences) the vectors and queries are blends of them (``_mixed``), else random."""
    efs = sorted({int(ef_search), *(int(e) for e in sweep)})
    import faiss

    rng = np.random.default_rng(seed)
    if anchors is not None:
        anchors = np.asarray(anchors, dtype=np.float32)
        dim = anchors.shape[1]
        vecs, queries = _mixed(rng, n, anchors), _mixed(rng, n_queries, anchors)
    else:
        vecs, queries = _unit(rng, n, dim), _unit(rng, n_queries, dim)
    exact = np.argsort(-(queries @ vecs.T), axis=1)[:, :k]
    out: dict = {"n": n, "dim": dim, "queries": n_queries, "k": k,
                 "vectors": f"blends of {len(anchors)} sentence embeddings" if anchors is not None else "random"}
    conn = db.connect()
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("DROP TABLE IF EXISTS rag_bench_vectors")
        conn.execute(f"CREATE TABLE rag_bench_vectors (id int PRIMARY KEY, embedding vector({dim}))")
        from pgvector.psycopg import register_vector

        register_vector(conn)
        t0 = time.perf_counter()
        with conn.cursor().copy("COPY rag_bench_vectors (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "vector"])  # binary COPY: no float formatting
            for i, v in enumerate(vecs):
                cp.write_row((i, v))
        t1 = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '2GB'")  # the HNSW graph of 1M vectors must fit, or the build crawls
        conn.execute("CREATE INDEX ON rag_bench_vectors USING hnsw (embedding vector_cosine_ops) "
                     "WITH (m = 16, ef_construction = 64)")
        t2 = time.perf_counter()
        def pg_search(q: np.ndarray) -> list[int]:
            return [r[0] for r in conn.execute("SELECT id FROM rag_bench_vectors ORDER BY embedding <=> %s::vector "
                                               "LIMIT %s", (vector_text(q), k)).fetchall()]

        runs = {}
        for ef in efs:
            conn.execute(f"SET hnsw.ef_search = {ef}")
            runs[ef] = _measure(ef, pg_search, queries, exact, 2)
        out["pgvector"] = {"load_s": round(t1 - t0, 2), "hnsw_build_s": round(t2 - t1, 2), **runs[int(ef_search)],
                           "sweep": [runs[e] for e in efs]}
        conn.execute("DROP TABLE rag_bench_vectors")
    finally:
        conn.close()
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    t0 = time.perf_counter()
    index.add(vecs)
    t1 = time.perf_counter()
    runs = {}
    for ef in efs:
        index.hnsw.efSearch = ef
        runs[ef] = _measure(ef, lambda q: index.search(q.reshape(1, -1), k)[1][0].tolist(), queries, exact, 3)
    out["faiss_hnsw"] = {"build_s": round(t1 - t0, 2), **runs[int(ef_search)], "sweep": [runs[e] for e in efs]}
    return out


def _measure(ef: int, search, queries: np.ndarray, exact: np.ndarray, digits: int) -> dict:
    """Recall@k of ``search(query) -> ids`` against ``exact`` (the true top k per query), and its latency."""
    k = exact.shape[1]
    lat, found = [], 0
    for q, truth in zip(queries, exact):
        s = time.perf_counter()
        ids = search(q)
        lat.append(time.perf_counter() - s)
        found += len(set(ids) & set(truth.tolist()))
    return {f"recall@{k}": round(found / (len(queries) * k), 4), "ef_search": ef,
            "p50_ms": round(1000 * statistics.median(lat), digits),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), digits)}


if __name__ == "__main__":  # python -m rag.index.postgres.bench URL N
    import json

    db = Database(sys.argv[1], statement_timeout_ms=None)
    print(json.dumps(pgvector_bench(db, int(sys.argv[2]) if len(sys.argv) > 2 else 5000), indent=2))
