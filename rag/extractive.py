"""Extractive answers: the passages' own sentences that best match the question, quoted and cited.

Used when no language model answers (or when asked for). Each sentence of the top passages
(``rag.chunking.sentence_spans``) is scored against the question:

    score = lexical overlap + dense_weight * cosine(question, sentence)

where the lexical overlap is the IDF-weighted share of the question's content words (folded,
Dutch-stemmed, stop words removed) found in the sentence (``SupportScorer``), and the optional
cosine comes from the embedding model (off by default, see ``DEFAULT_DENSE_WEIGHT``). Ties go to
the better-ranked passage. With several phrasings of the question (the question and its Dutch
translation) the best one counts.

The best sentence's score is also the pipeline's abstention signal (see ``rag.pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .chunking import sentence_spans
from .citations import SupportScorer, citation_for
from .schema import Citation, Hit

MIN_SENTENCE_WORDS = 4  # headings and fragments ("Dode in Charkiv") are not answers
# Off by default: on eval/qa.jsonl (offline MiniLM) adding 0.3 * cosine put an evidence sentence among the
# two quoted ones for 78 instead of 77 of 114 answerable questions, and embedding the sentences cost ~1 s
# per question on 2 CPU cores. Pass dense_weight > 0 (and an embedder) to use it.
DEFAULT_DENSE_WEIGHT = 0.0


@dataclass
class ScoredSentence:
    n: int  # number of the passage (1-based position in the hits)
    hit: Hit
    start: int  # offsets in the document (chunk.start + offset in the chunk)
    end: int
    text: str
    overlap: float
    dense: float | None
    score: float


@dataclass
class Extract:
    text: str  # „sentence” [n] „sentence” [m]
    sentences: list[ScoredSentence] = field(default_factory=list)  # the quoted ones, best first
    citations: list[Citation] = field(default_factory=list)
    relevance: float = 0.0  # score of the best sentence (0 when there is none)


def quote(sentence: str) -> str:
    """„sentence” -- or ‚sentence‘ when the sentence itself holds a „quotation”."""
    s = " ".join(sentence.split())
    return f"‚{s}‘" if ("„" in s or "“" in s) else f"„{s}”"


class ExtractiveAnswerer:
    def __init__(self, scorer: SupportScorer, embedder=None, *, dense_weight: float = DEFAULT_DENSE_WEIGHT,
                 max_sentences: int = 2, min_relative: float = 0.8) -> None:
        self.scorer = scorer
        self.embedder = embedder
        self.dense_weight = dense_weight if embedder is not None else 0.0
        self.max_sentences = max_sentences
        self.min_relative = min_relative

    def sentences(self, hits: Sequence[Hit]) -> list[tuple[int, Hit, int, int, str]]:
        """(n, hit, doc start, doc end, text) of every answer-like sentence, one per document span."""
        out = []
        seen: set[tuple[str, int]] = set()
        for n, hit in enumerate(hits, start=1):
            c = hit.chunk
            for s, e in sentence_spans(c.text):
                text = c.text[s:e]
                if text.lstrip().startswith("#") or len(text.split()) < MIN_SENTENCE_WORDS:
                    continue
                key = (c.doc_id, c.start + s)
                if key in seen:  # neighbouring chunks overlap: keep the better-ranked copy
                    continue
                seen.add(key)
                out.append((n, hit, c.start + s, c.start + e, text))
        return out

    def rank(self, queries: Sequence[str] | str, hits: Sequence[Hit]) -> list[ScoredSentence]:
        """Every sentence of ``hits`` scored against the question(s), best first."""
        queries = [queries] if isinstance(queries, str) else [q for q in queries if q and q.strip()]
        cands = self.sentences(hits)
        if not cands or not queries:
            return []
        q_tokens = self.scorer.tokens(list(queries))
        s_tokens = self.scorer.tokens([t for *_, t in cands])
        dense = self._dense(queries, [t for *_, t in cands])
        scored = []
        for i, ((n, hit, start, end, text), toks) in enumerate(zip(cands, s_tokens)):
            ov = max(self.scorer.overlap(q, toks) for q in q_tokens)
            d = None if dense is None else float(dense[i])
            score = ov + (self.dense_weight * max(d, 0.0) if d is not None else 0.0)
            scored.append(ScoredSentence(n, hit, start, end, text, ov, d, score))
        scored.sort(key=lambda x: (-x.score, x.n, x.start))
        return scored

    def _dense(self, queries: Sequence[str], texts: list[str]) -> np.ndarray | None:
        if self.embedder is None or self.dense_weight <= 0:
            return None
        qv = np.stack([np.asarray(self.embedder.embed_query(q), dtype=np.float32) for q in queries])
        sv = np.asarray(self.embedder.embed_passages(texts), dtype=np.float32)
        return (sv @ qv.T).max(axis=1)

    def answer(self, queries: Sequence[str] | str, hits: Sequence[Hit],
               ranked: list[ScoredSentence] | None = None) -> Extract:
        """Quote the best sentence, plus the next ones that score nearly as well (up to ``max_sentences``)."""
        ranked = self.rank(queries, hits) if ranked is None else ranked
        if not ranked:
            return Extract(text="", relevance=0.0)
        best = ranked[0]
        chosen = [best]
        for s in ranked[1:]:
            if len(chosen) >= self.max_sentences or s.score < self.min_relative * best.score:
                break
            chosen.append(s)
        text = " ".join(f"{quote(s.text)} [{s.n}]" for s in chosen)
        by_n: dict[int, Citation] = {}
        for s in chosen:
            by_n.setdefault(s.n, citation_for(s.n, s.hit))
        return Extract(text=text, sentences=chosen, citations=[by_n[n] for n in sorted(by_n)], relevance=best.score)
