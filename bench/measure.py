"""Measurements shared by the benchmark's sections: latency
percentiles, a timed index build, the model's raw encode rate and hit rates of our retriever."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag.eval.metrics import hit_at_k, relevance

def percentiles(samples_ms: Sequence[float]) -> dict[str, float | int | None]:
    """p50 / p95 / mean / max of latencies in milliseconds (linear interpolation, like numpy)."""
    if not len(samples_ms):
        return {"n": 0, "p50": None, "p95": None, "mean": None, "max": None}
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "mean": round(float(a.mean()), 3), "max": round(float(a.max()), 3)}


def _build(data_dir: Path, index_dir: Path, embedder, params) -> dict[str, Any]:
    """``rag.index.local.indexer.build_index`` with a fresh index; stage times from its on_stage messages."""
    from rag.index.local.indexer import build_index

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    report = build_index(data_dir, index_dir, embedder, params, rebuild=True,
                         on_stage=lambda m: marks.append((m, time.perf_counter())))
    end = time.perf_counter()
    stages: dict[str, float] = {}
    names = {"Loading": "load_and_chunk", "Embedding": "embed", "Writing": "write_faiss_bm25_files"}
    for n, (msg, at) in enumerate(marks):
        nxt = marks[n + 1][1] if n + 1 < len(marks) else end
        key = next((v for k, v in names.items() if msg.startswith(k)), msg)
        stages[key] = round(nxt - at, 3)
    return {"seconds": round(end - t0, 3), "chunks": report.chunks, "documents": report.documents,
            "stages": stages}


def raw_encode_rate(model, texts: Sequence[str], batch_size: int, repeats: int = 1,
                    keep: list | None = None) -> dict[str, Any]:
    """The model's own ``encode`` on these texts (best of ``repeats`` passes); the vectors of the
    last pass are appended to ``keep`` when given."""
    best = float("inf")
    vecs = None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
        best = min(best, time.perf_counter() - t)
    if keep is not None:
        keep.append(np.asarray(vecs, dtype=np.float32))
    return {"chunks": len(texts), "seconds": round(best, 3), "chunks_per_s": round(len(texts) / best, 1) if best else None}


def answerable(items) -> list:
    return [it for it in items if it.answerable]


def hit_rate(texts_per_question: Sequence[Sequence[str]], items, k: int) -> float:
    """Share of questions with an evidence phrase in the top ``k`` texts (``rag.eval.metrics.hit_at_k``)."""
    per_q = [relevance(texts, it.evidence) for texts, it in zip(texts_per_question, items)]
    return round(sum(hit_at_k(m, k) for m in per_q) / max(1, len(items)), 4)


def our_hits(retriever, items, k: int, mode: str, cache=None) -> tuple[float, dict[str, Any]]:
    texts, lat = [], []
    for it in items:
        if cache is not None:
            cache.clear()
        t = time.perf_counter()
        hits = retriever.search(it.question, k=k, mode=mode)
        lat.append((time.perf_counter() - t) * 1000)
        texts.append([h.chunk.text for h in hits])
    return hit_rate(texts, items, k), percentiles(lat)


def ms_cell(p: dict | None, key: str = "p50") -> str:
    """A table cell: the ``key`` percentile of ``percentiles``' figures with one decimal, or "–"."""
    return "–" if not p or p.get(key) is None else f"{p[key]:.1f}"
