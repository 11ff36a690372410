"""Answers that are not answers, whatever their citations say: the failures of small local models.

Each finder returns a :class:`Flag` (a reason the JSON names and ``rag eval`` counts) or None:

================  =================================================================================
reason            what it finds
================  =================================================================================
citation_only     nothing but citation markers ("[1]")
repetition        the same sentence again and again, or a phrase looping ("de de de ...")
copied_passage    a passage copied out wholesale instead of an answer (``COPY_MIN_WORDS`` words or
                  more, nearly all of them runs of the passage's own words)
wrong_language    an answer in another language than the question's
not_an_answer     a reply that says the passages do not answer, and then says something anyway
================  =================================================================================

:class:`LoopGuard` watches a stream as it arrives and says when to stop it: a model in a loop would
otherwise write until its token limit.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from rag.answer.check import CITE, find_citations
from rag.answer.prompt import says_cannot_answer
from rag.text import DUTCH_MARKERS, ENGLISH_MARKERS, fold

REPEATS = 2  # a sentence of REPEAT_MIN_WORDS words or more said this many times is a loop
REPEAT_MIN_WORDS = 3
LOOP_TAIL = re.compile(r"(.{3,80}?)(?:\s*\1){3,}\s*$", re.S)  # a phrase said four times in a row at the end
COPY_MIN_WORDS = 100
COPY_SHARE = 0.9  # ... of which this share are runs of at least COPY_RUN words of one passage
COPY_RUN = 8
LANGUAGE_MIN_WORDS = 6
TAIL_WINDOW = 1000  # characters of the end of a text that LOOP_TAIL reads
LONGEST_SENTENCE = 2000  # characters; a longer "sentence" is not counted by LoopGuard (its tail still is)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Flag:
    reason: str
    detail: str

    def to_dict(self) -> dict:
        return {"reason": self.reason, "detail": self.detail}


def words_of(text: str) -> list[str]:
    return re.findall(r"\w+", fold(CITE.sub(" ", text)))


def citation_only(text: str) -> Flag | None:
    if find_citations(text) and not words_of(text):
        return Flag("citation_only", "the answer is only a citation marker, without any words")
    return None


def _sentences(text: str) -> list[str]:
    return [k for k in map(_sentence_key, SENTENCE_END.split(text)) if k]


def _sentence_key(sentence: str) -> str:
    return " ".join(fold(CITE.sub(" ", sentence)).split()).strip(" .!?")


def repetition(text: str) -> Flag | None:
    counts = Counter(s for s in _sentences(text) if len(s.split()) >= REPEAT_MIN_WORDS)
    if counts:
        sentence, n = counts.most_common(1)[0]
        if n >= REPEATS:
            return Flag("repetition", f"the same sentence {n} times: \"{sentence[:80]}\"")
    return looping_tail(text)


def looping_tail(text: str) -> Flag | None:
    """A phrase said four times in a row at the end of the text (only its last ``TAIL_WINDOW`` characters
    are read: the pattern backtracks, and a loop worth naming is far shorter)."""
    tail = LOOP_TAIL.search(" ".join(fold(CITE.sub(" ", text[-TAIL_WINDOW:])).split()))
    if tail and len(tail.group(0).split()) >= 6:
        return Flag("repetition", f"a phrase looping: \"{tail.group(1).strip()[:60]}\"")
    return None


def dedupe_sentences(text: str) -> str:
    """The text with every repeat of a sentence (and what follows a loop's start) left out."""
    out, seen = [], set()
    for part in re.split(r"(?<=[.!?])\s+(?=\S)|(?<=\])\s+(?=\S)", text):
        key = " ".join(fold(CITE.sub(" ", part)).split()).strip(" .!?")
        if key and key in seen:
            continue
        seen.add(key)
        out.append(part)
    return " ".join(out).strip()


def copied_passage(text: str, passages: Sequence[str]) -> Flag | None:
    words = words_of(text)
    if len(words) < COPY_MIN_WORDS:
        return None
    for n, passage in enumerate(passages, 1):
        grams = _ngrams(re.findall(r"\w+", fold(passage)), COPY_RUN)
        covered = [False] * len(words)
        for i in range(len(words) - COPY_RUN + 1):
            if tuple(words[i:i + COPY_RUN]) in grams:
                for j in range(i, i + COPY_RUN):
                    covered[j] = True
        if sum(covered) >= COPY_SHARE * len(words):
            return Flag("copied_passage", f"{sum(covered)} of the answer's {len(words)} words are copied from "
                                          f"passage [{n}] instead of answering")
    return None


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


_QUOTE = re.compile(r"[„“\"«][^„“”\"«»]*[”\"»]")


def language_of(text: str) -> tuple[int, int]:
    """(Dutch, English) stop-word counts of the text outside its quotations."""
    words = re.findall(r"[a-z]+", fold(_QUOTE.sub(" ", CITE.sub(" ", text))))
    return sum(w in DUTCH_MARKERS for w in words), sum(w in ENGLISH_MARKERS for w in words)


def wrong_language(text: str, lang: str) -> Flag | None:
    if len(words_of(text)) < LANGUAGE_MIN_WORDS:
        return None
    nl, en = language_of(text)
    other, own = (nl, en) if lang == "en" else (en, nl)
    if other >= 3 and other > 2 * own:
        wanted = "English" if lang == "en" else "Dutch"
        return Flag("wrong_language", f"the question is in {wanted}, the answer is not")
    return None


def not_an_answer(text: str) -> Flag | None:
    """Says the passages do not answer, and states something anyway (a refusal with content, or content
    with a refusal): the reader cannot tell which part to believe."""
    if says_cannot_answer(text, cited=False) or _declines(text):
        if len(words_of(text)) > 12 or find_citations(text):
            return Flag("not_an_answer", "the reply says the passages do not answer, and answers anyway")
    return None


def _declines(text: str) -> bool:
    """Any sentence of the reply is a refusal on its own (recognised as one by ``says_cannot_answer``)."""
    return any(says_cannot_answer(s) for s in re.split(r"(?<=[.!?])\s+|\n+", CITE.sub(" ", text)) if s.strip())


def degenerate(text: str, passages: Sequence[str], lang: str) -> list[Flag]:
    """Every flag the answer earns, in the order of the table above."""
    flags = [citation_only(text), repetition(text), copied_passage(text, passages), wrong_language(text, lang),
             not_an_answer(text)]
    return [f for f in flags if f is not None]


class LoopGuard:
    """Fed the pieces of a stream; ``add`` turns true once the text repeats itself (the two tests of
    ``repetition``), so the caller can stop the stream instead of waiting for the token limit.

    The work per piece is bounded whatever the stream: each finished sentence is counted once, and the
    looping-phrase test reads only the end of the text (a server that floods megabytes costs linear time)."""

    def __init__(self, check_every: int = 40) -> None:
        self.check_every = check_every
        self.length = 0
        self.flag: Flag | None = None
        self._next = check_every
        self._pending = ""  # the sentence being written
        self._overlong = False  # ... is already longer than LONGEST_SENTENCE: it is not counted
        self._recent = ""  # the last TAIL_WINDOW characters
        self._counts: Counter[str] = Counter()

    def add(self, piece: str) -> bool:
        if self.flag is not None:
            return True
        self.length += len(piece)
        self._recent = (self._recent + piece)[-TAIL_WINDOW:]
        self._count_sentences(piece)
        if self.flag is None and self.length >= self._next:
            self._next = self.length + self.check_every
            self.flag = looping_tail(self._recent)
        return self.flag is not None

    def _count_sentences(self, piece: str) -> None:
        start = max(0, len(self._pending) - 1)  # (a boundary may begin with the last character before)
        self._pending += piece
        if SENTENCE_END.search(self._pending, start) is None:
            if len(self._pending) > LONGEST_SENTENCE:
                self._pending, self._overlong = self._pending[-1:], True
            return
        *done, self._pending = SENTENCE_END.split(self._pending)
        for n, sentence in enumerate(done):
            if n == 0 and self._overlong:
                continue
            key = _sentence_key(sentence)
            if len(key.split()) >= REPEAT_MIN_WORDS:
                self._counts[key] += 1
                if self._counts[key] >= REPEATS:
                    self.flag = Flag("repetition", f"the same sentence {self._counts[key]} times: \"{key[:80]}\"")
                    return
        self._overlong = False
