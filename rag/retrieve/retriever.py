"""Ranked passages for a question: BM25, dense (FAISS), or hybrid (weighted reciprocal-rank fusion)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rag.contract import MIN_K, MODES
from rag.embed.base import Embedder
from rag.errors import InvalidQuery
from rag.schema import Hit
from rag.index.local.store import IndexStore

@dataclass(frozen=True)
class FusionParams:
    """How hybrid search combines BM25 and dense rankings.

    ``method="score"`` (default): a convex combination of normalised scores,
    ``bm25_weight * bm25/max(bm25) + dense_weight * minmax(cosine)`` over the union of both
    candidate lists. ``method="rrf"``: weighted reciprocal-rank fusion,
    ``sum weight / (rrf_k + rank)``. docs/evaluation.md gives the measurement behind the default.
    """

    bm25_weight: float = 0.3
    dense_weight: float = 0.7
    rrf_k: int = 60
    candidates: int = 50
    method: str = "score"

    @classmethod
    def from_settings(cls, s) -> "FusionParams":
        return cls(bm25_weight=s.bm25_weight, dense_weight=s.dense_weight, rrf_k=s.rrf_k,
                   candidates=s.candidates, method=s.fusion)


class Retriever:
    def __init__(self, store: IndexStore, embedder: Embedder, fusion: FusionParams = FusionParams()) -> None:
        self.store = store
        self.embedder = embedder
        self.fusion = fusion

    def search(self, query: str | Sequence[str], k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """Top ``k`` passages. ``query`` may be several phrasings of one question (e.g. the question
        and its Dutch translation): each chunk keeps its best score over the phrasings."""
        queries = [query] if isinstance(query, str) else [q for q in query if q and q.strip()]
        if not queries or not queries[0].strip():
            raise InvalidQuery("the question is empty")
        if mode not in MODES:
            raise InvalidQuery(f"unknown mode '{mode}': use one of {', '.join(MODES)}")
        if k < MIN_K:
            raise InvalidQuery(f"k must be at least {MIN_K}")
        n_cand = max(k, self.fusion.candidates)

        best: dict[int, float] = {}
        bm25_scores: dict[int, float] = {}
        dense_scores: dict[int, float] = {}
        for q in queries:
            bm25 = dict(self.store.search_bm25(q, n_cand)) if mode in ("bm25", "hybrid") else {}
            dense: dict[int, float] = {}
            if mode in ("dense", "hybrid"):
                qvec = self.embedder.embed_query(q)
                dense = dict(self.store.search_dense(qvec, n_cand))
                # exact similarity for BM25's candidates too
                dense.update(self.store.similarities(qvec, [i for i in bm25 if i not in dense]))
            for i, v in bm25.items():
                bm25_scores[i] = max(v, bm25_scores.get(i, 0.0))
            for i, v in dense.items():
                dense_scores[i] = max(v, dense_scores.get(i, -1.0))
            if mode == "bm25":
                scores = bm25
            elif mode == "dense":
                scores = dense
            elif self.fusion.method == "rrf":
                scores = self._rrf(bm25, dense)
            else:
                scores = self._convex(bm25, dense)
            for i, v in scores.items():
                best[i] = max(v, best.get(i, float("-inf")))

        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        chunks = self.store.get_chunks([i for i, _ in ranked])  # ids a concurrent re-index removed are dropped
        ranked = [(i, s) for i, s in ranked if i in chunks]
        return [
            Hit(chunk=chunks[i], score=score, rank=rank,
                bm25_score=bm25_scores.get(i, 0.0 if mode != "dense" else None), dense_score=dense_scores.get(i))
            for rank, (i, score) in enumerate(ranked, start=1)
        ]

    def _convex(self, bm25: dict[int, float], dense: dict[int, float]) -> dict[int, float]:
        top = max(bm25.values(), default=0.0)
        lo, hi = min(dense.values(), default=0.0), max(dense.values(), default=0.0)
        span = hi - lo if hi > lo else 1.0
        f = self.fusion
        return {
            i: f.bm25_weight * (bm25.get(i, 0.0) / top if top > 0 else 0.0)
            + f.dense_weight * ((dense[i] - lo) / span if i in dense else 0.0)
            for i in set(bm25) | set(dense)
        }

    def _rrf(self, bm25: dict[int, float], dense: dict[int, float]) -> dict[int, float]:
        f = self.fusion
        fused: dict[int, float] = {}
        for weight, scores in ((f.bm25_weight, bm25), (f.dense_weight, dense)):
            for rank, i in enumerate(sorted(scores, key=lambda i: -scores[i]), start=1):
                fused[i] = fused.get(i, 0.0) + weight / (f.rrf_k + rank)
        return fused
