"""What a sentence of an answer claims, held against the passage sentence that supports it: the facts
(numbers, months, amounts, quotations, names) the passages must hold, and whether the supporting sentence
speaks of someone else. Used by ``rag.answer.verify``."""

from __future__ import annotations

import re
from typing import Sequence

from rag.answer.facts import SAME_NAME, months, name_in, name_part_in, names, numbers, quoted, vague_amounts
from rag.text import fold


def names_found(wanted: Sequence[str], context: str) -> bool:
    """The question's names in the answer's context: all of one or two; at least half of three or more
    (a question that names several things is answered in parts)."""
    found = sum(name_part_in(n, context) for n in wanted)
    return found == len(wanted) if len(wanted) <= 2 else found * 2 >= len(wanted)


def missing_facts(clean: str, near: str, cited_text: str) -> str | None:
    """The first fact of the sentence that the passages do not hold, described; None when all are there.
    Numbers, months and amounts must be near the supporting sentence; names and quotations anywhere in
    the cited passages (a pronoun often stands for the name)."""
    near_numbers = numbers(near)
    for value in sorted(numbers(clean)):
        if not any(abs(value - v) < 1e-9 for v in near_numbers):
            return f"the number {value:g}"
    if not months(clean) <= months(near):
        return "that month"
    near_folded = fold(near)
    for word in vague_amounts(clean):
        if word not in near_folded:
            return f"\"{word}\""
    cited_words = " " + " ".join(re.findall(r"\w+", fold(cited_text))) + " "
    for q in quoted(clean):  # compared word by word: punctuation and quotation marks may differ
        if " " + " ".join(re.findall(r"\w+", q)) + " " not in cited_words:
            return f"the quoted words \"{q[:40]}\""
    for name in names(clean):
        if not name_in(name, cited_text):
            return f"\"{name}\""
    return None


_LOCATIVE = re.compile(r"\b(?:in|naar|uit|vanuit|te|bij|op|door|over|to|from|at|into|across|near)\s+(?:het\s+|de\s+|the\s+)?$", re.I)


def _place(name: str, text: str) -> bool:
    """A place rather than someone: a known country or city, or a name right after "in", "naar", "uit" ..."""
    if name in SAME_NAME:
        return True
    folded = fold(text)
    at = folded.find(name)
    return at >= 0 and bool(_LOCATIVE.search(folded[max(0, at - 20):at]))


def someone_else(clean: str, support: str) -> str | None:
    """The people the supporting sentence speaks of, when it names others than the answer does."""
    for kind_is_place in (False, True):  # the people it names, then the places
        own = [n for n in names(clean) if _place(n, clean) == kind_is_place]
        theirs = [n for n in names(support) if _place(n, support) == kind_is_place]
        if not own or not theirs:
            continue
        if any(name_in(n, support) for n in own) or any(name_in(t, clean) for t in theirs):
            continue
        words = {w for n in own for w in n.split() if len(w) > 2}
        if any(w in words for t in theirs for w in t.split()):  # "Kim Jong-un's daughter" and "Kim Ju-ae": one family
            continue
        return ", ".join(theirs[:2])
    return None
