"""Ranked passages for a question: BM25, dense (FAISS), or hybrid (weighted reciprocal-rank fusion)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .embedding import Embedder
from .errors import InvalidQuery
from .schema import Hit
from .store import IndexStore

MODES = ("bm25", "dense", "hybrid")


@dataclass(frozen=True)
class FusionParams:
    """Weighted reciprocal-rank fusion: score = sum over modes of weight / (rrf_k + rank)."""

    bm25_weight: float = 0.7
    dense_weight: float = 0.3
    rrf_k: int = 60
    candidates: int = 50

    @classmethod
    def from_settings(cls, s) -> "FusionParams":
        return cls(bm25_weight=s.bm25_weight, dense_weight=s.dense_weight, rrf_k=s.rrf_k, candidates=s.candidates)


class Retriever:
    def __init__(self, store: IndexStore, embedder: Embedder, fusion: FusionParams = FusionParams()) -> None:
        self.store = store
        self.embedder = embedder
        self.fusion = fusion

    def search(self, query: str | Sequence[str], k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """Top ``k`` passages. ``query`` may be several phrasings of one question (e.g. the question
        and its Dutch translation); their rankings are fused like the modes are."""
        queries = [query] if isinstance(query, str) else [q for q in query if q and q.strip()]
        if not queries or not queries[0].strip():
            raise InvalidQuery("the question is empty")
        if mode not in MODES:
            raise InvalidQuery(f"unknown mode '{mode}': use one of {', '.join(MODES)}")
        if k < 1:
            raise InvalidQuery("k must be at least 1")
        n_cand = max(k, self.fusion.candidates)

        rankings: list[tuple[float, list[tuple[int, float]]]] = []  # (weight, [(chunk index, raw score)])
        bm25_scores: dict[int, float] = {}
        dense_scores: dict[int, float] = {}
        qvecs = []
        for q in queries:
            if mode in ("bm25", "hybrid"):
                ranked = self.store.search_bm25(q, n_cand)
                for i, s in ranked:
                    bm25_scores[i] = max(s, bm25_scores.get(i, 0.0))
                rankings.append((self.fusion.bm25_weight, ranked))
            if mode in ("dense", "hybrid"):
                qvecs.append(self.embedder.embed_query(q))
                ranked = self.store.search_dense(qvecs[-1], n_cand)
                for i, s in ranked:
                    dense_scores[i] = max(s, dense_scores.get(i, -1.0))
                rankings.append((self.fusion.dense_weight, ranked))

        if mode != "hybrid" and len(queries) == 1:
            scored = rankings[0][1]
        else:
            fused: dict[int, float] = {}
            for weight, ranked in rankings:
                for rank, (i, _) in enumerate(ranked, start=1):
                    fused[i] = fused.get(i, 0.0) + weight / (self.fusion.rrf_k + rank)
            scored = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))

        hits = []
        for rank, (i, score) in enumerate(scored[:k], start=1):
            if qvecs and i not in dense_scores:  # fused in from BM25 only: still report its similarity
                dense_scores[i] = max(float(self.store.vectors[i] @ v) for v in qvecs)
            hits.append(Hit(chunk=self.store.chunks[i], score=score, rank=rank,
                            bm25_score=bm25_scores.get(i), dense_score=dense_scores.get(i)))
        return hits
