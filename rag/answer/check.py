"""Citation checking: after generation, every ``[n]`` in an answer must name a passage that was given.

* ``[n]`` groups are parsed in the forms models write: ``[1]``, ``[1, 2]``, ``[1][2]``, ``[1-3]``,
  ``[1–3]``, ``[bron 2]``, ``[passage 2]``.
* Numbers that name no given passage are removed from the text and reported.
* Sentences left without any citation get the passage that supports them best attached
  (``Citation.attached=True``) when the lexical support is strong enough, and are reported
  as unsupported otherwise.

Support is measured with :class:`SupportScorer`: the IDF-weighted share of a sentence's content
words (folded, Dutch-stemmed, stop words removed; ``rag.text.BM25Analyzer``) found in a passage.
The extractive answerer uses the same scorer to rank sentences against the question.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

from rag.ingest.chunking import sentence_spans
from rag.schema import Citation, Hit
from rag.text import EXTRA_STOPWORDS, BM25Analyzer, stopword_list

_CITE = re.compile(
    r"\[\s*(?:(?:passages?|bron(?:nen)?|sources?|artikel(?:en)?)\s*)?"
    r"(-?\d+(?:\s*(?:[-–—,;&]|\ben\b|\band\b)\s*-?\d+)*)\s*\]",
    re.IGNORECASE,
)
CITE = _CITE  # a citation group: "[1]", "[1, 2]", "[1-3]", "[bron 2]" ...
_RANGE = re.compile(r"(?<![\d-])(\d+)\s*[-–—]\s*(\d+)")
_NUM = re.compile(r"-?\d+")
MAX_NUMBER_DIGITS = 6  # "[123456789012345678901234567890]" is read as an invalid number, not converted
MAX_RANGE = 20  # "[1-200]" is not a citation list anyone means


def parse_group(inner: str) -> list[int]:
    """Numbers cited by the inside of one ``[...]`` group, ranges expanded, order kept, no repeats."""
    nums: list[int] = []
    pos = 0
    for m in _RANGE.finditer(inner):
        nums.extend(_int(x) for x in _NUM.findall(inner[pos:m.start()]))
        a, b = _int(m.group(1)), _int(m.group(2))
        if a <= b and b - a <= MAX_RANGE:
            nums.extend(range(a, b + 1))
        else:
            nums.extend((a, b))
        pos = m.end()
    nums.extend(_int(x) for x in _NUM.findall(inner[pos:]))
    seen: set[int] = set()
    return [n for n in nums if not (n in seen or seen.add(n))]


def _int(digits: str) -> int:
    """The number, or -1 (never a passage) for one too long to mean a passage."""
    return int(digits) if len(digits.lstrip("-")) <= MAX_NUMBER_DIGITS else -1


def find_citations(text: str) -> list[tuple[int, int, list[int]]]:
    """(start, end, numbers) of every citation group in ``text``."""
    return [(m.start(), m.end(), parse_group(m.group(1))) for m in _CITE.finditer(text)]


def format_group(nums: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in nums)


# ----------------------------------------------------------------------------- lexical support

class SupportScorer:
    """IDF-weighted word overlap between short texts (question, sentence) and passages.

    ``idf`` maps a stemmed token to its weight; unknown tokens (not in the corpus) get ``default_idf``.
    """

    def __init__(self, analyzer: BM25Analyzer, idf: Callable[[str], float] | None = None,
                 default_idf: float = 1.0) -> None:
        self.analyzer = analyzer
        base = analyzer.stopwords if isinstance(analyzer.stopwords, (list, tuple, set, frozenset)) else stopword_list(analyzer.stopwords)
        self._stopwords = sorted(set(base) | EXTRA_STOPWORDS)
        self._idf = idf or (lambda _t: default_idf)

    @classmethod
    def from_store(cls, store) -> "SupportScorer":
        """IDF from the index's BM25 statistics (document frequency per stemmed token)."""
        df = _document_frequencies(store)
        n = max(1, len(store.chunks))
        default = math.log(1 + (n - 0.5) / 1.5)  # a word seen in ~one chunk (or none): rare, informative

        def idf(token: str) -> float:
            f = df.get(token)
            return default if f is None else math.log(1 + (n - f + 0.5) / (f + 0.5))

        return cls(store.analyzer, idf)

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        if not texts:
            return []
        out = self.analyzer.tokenize(list(texts), return_ids=False, stopwords=self._stopwords)
        return [list(t) for t in out]

    def weight(self, token: str) -> float:
        return self._idf(token)

    def overlap(self, query_tokens: Iterable[str], text_tokens: Iterable[str]) -> float:
        """Share (0..1) of the query's IDF weight whose tokens occur in the text."""
        q = set(query_tokens)
        if not q:
            return 0.0
        t = set(text_tokens)
        total = sum(self._idf(x) for x in q)
        return 0.0 if total <= 0 else sum(self._idf(x) for x in q & t) / total

    def shared(self, a: Iterable[str], b: Iterable[str]) -> int:
        return len(set(a) & set(b))


def _document_frequencies(store) -> dict[str, int]:
    """Chunk frequency of every stemmed token. Read from bm25s's CSC score matrix when it has the
    expected shape (one column per token), else counted by tokenizing the chunks."""
    try:
        import numpy as np

        bm25 = store.bm25
        df = np.diff(np.asarray(bm25.scores["indptr"]))
        return {tok: int(df[i]) for tok, i in bm25.vocab_dict.items() if tok and 0 <= i < len(df)}
    except Exception:
        counts: dict[str, int] = {}
        if store.chunks:
            for toks in store.analyzer.tokenize([c.text for c in store.chunks], return_ids=False):
                for t in set(toks):
                    counts[t] = counts.get(t, 0) + 1
        return counts


# ----------------------------------------------------------------------------- checking an answer

ATTACH_MIN_SUPPORT = 0.5  # share of the sentence's IDF weight found in the passage
ATTACH_MIN_SHARED = 2  # ... and at least this many distinct shared content words
MIN_CHECKED_TOKENS = 3  # shorter sentences ("Ja.", "Volgens de artikelen:") are not checked


@dataclass
class CheckResult:
    text: str  # the answer with invalid citations removed and attached ones added
    citations: list[Citation] = field(default_factory=list)  # sorted by n
    removed: list[int] = field(default_factory=list)  # invalid numbers taken out
    attached: list[int] = field(default_factory=list)  # passages attached to uncited sentences
    unsupported: list[str] = field(default_factory=list)  # uncited sentences with no strong support
    warnings: list[str] = field(default_factory=list)


def citation_for(n: int, hit: Hit, attached: bool = False) -> Citation:
    c = hit.chunk
    return Citation(n=n, doc_id=c.doc_id, title=c.title, text=c.text, start=c.start, end=c.end,
                    chunk_id=c.chunk_id, attached=attached, page=c.page, date=c.date,
                    date_source=c.date_source)


def short(text: str, limit: int = 90) -> str:
    """``text`` on one line, citation markers left out, cut to ``limit`` characters (for warnings)."""
    s = " ".join(CITE.sub(" ", text).split()).replace(" .", ".").replace(" ,", ",")
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def remove_invalid(text: str, n_passages: int) -> tuple[str, list[int]]:
    """Drop citation numbers outside 1..n_passages; rewrite groups that mixed valid and invalid ones."""
    removed: list[int] = []
    out, pos = [], 0
    for start, end, nums in find_citations(text):
        valid = [n for n in nums if 1 <= n <= n_passages]
        bad = [n for n in nums if not 1 <= n <= n_passages]
        if not bad:
            continue
        removed.extend(bad)
        out.append(text[pos:start])
        if valid:
            out.append(format_group(valid))
        else:
            while out and out[-1].endswith((" ", "\t")):  # "zin [9]." -> "zin."
                out[-1] = out[-1].rstrip(" \t")
        pos = end
    out.append(text[pos:])
    seen: set[int] = set()
    return "".join(out), [n for n in removed if not (n in seen or seen.add(n))]


def sentence_units(text: str) -> list[tuple[int, int]]:
    """Sentence spans of an answer (see ``_sentence_units``): what the check gives a verdict each."""
    return _sentence_units(text)


def _sentence_units(text: str) -> list[tuple[int, int]]:
    """Sentence spans of the answer, with citation groups that open a sentence ("… . [2] Next")
    counted as the end of the previous sentence -- unless the answer opens with a citation ("[1] Park
    is 56. [2] Ze ..."): a model that cites first cites first throughout, so each opening group is its
    sentence's own."""
    spans = sentence_spans(text)
    if spans and _CITE.match(text, spans[0][0]):
        return [(s, e) for s, e in spans if _CITE.sub("", text[s:e]).strip()]
    units: list[list[int]] = []
    for s, e in spans:
        lead = s
        while True:
            m = _CITE.match(text, lead)
            if not m:
                break
            lead = m.end()
            while lead < e and text[lead].isspace():
                lead += 1
        if lead > s and units:
            units[-1][1] = max(units[-1][1], _last_cite_end(text, s, lead))
        if lead < e:
            units.append([lead, e])
    return [(s, e) for s, e in units]


def _last_cite_end(text: str, s: int, lead: int) -> int:
    end = s
    for m in _CITE.finditer(text, s, lead):
        end = m.end()
    return end


def _insertion_point(text: str, start: int, end: int) -> int:
    """Where to put "[n]" in a sentence: before its final punctuation and closing quotes."""
    i = end
    while i > start and text[i - 1] in ".!?…:;\"'”’»)":
        i -= 1
    return i if i > start else end


def check_citations(text: str, passages: Sequence[Hit], scorer: SupportScorer, *,
                    attach: bool = True, min_support: float = ATTACH_MIN_SUPPORT,
                    min_shared: int = ATTACH_MIN_SHARED) -> CheckResult:
    """Check the citations of a generated answer against the passages it was given (``[n]`` is
    ``passages[n-1]``)."""
    result = CheckResult(text=text)
    cleaned, removed = remove_invalid(text, len(passages))
    result.removed = removed
    if removed:
        result.warnings.append(
            "removed citation(s) to passages that were not given: " + ", ".join(f"[{n}]" for n in removed)
            + f" (the answer was given {len(passages)} passage(s))"
        )

    cited_by_model = {n for _, _, nums in find_citations(cleaned) for n in nums}
    insertions: list[tuple[int, int]] = []  # (position, passage number)
    if attach and passages:
        units = _sentence_units(cleaned)
        uncited = [(s, e) for s, e in units if not find_citations(cleaned[s:e])]
        texts = [_CITE.sub(" ", cleaned[s:e]) for s, e in uncited]
        sent_tokens = scorer.tokens(texts)
        pass_tokens = scorer.tokens([h.chunk.text for h in passages]) if uncited else []
        for (s, e), sent, toks in zip(uncited, texts, sent_tokens):
            if len(set(toks)) < MIN_CHECKED_TOKENS or sent.rstrip().endswith(":"):
                continue
            best_n, best_support, best_shared = 0, 0.0, 0
            for n, ptoks in enumerate(pass_tokens, start=1):
                sup = scorer.overlap(toks, ptoks)
                if sup > best_support:
                    best_n, best_support, best_shared = n, sup, scorer.shared(toks, ptoks)
            if best_n and best_support >= min_support and best_shared >= min_shared:
                insertions.append((_insertion_point(cleaned, s, e), best_n))
            else:
                result.unsupported.append(sent.strip())
                result.warnings.append(f"sentence without a supporting passage: \"{short(sent)}\"")

    if insertions:
        parts, pos = [], 0
        for at, n in sorted(insertions):
            parts.append(cleaned[pos:at].rstrip(" "))
            parts.append(f" [{n}]")
            pos = at
        parts.append(cleaned[pos:])
        cleaned = "".join(parts)

    result.text = cleaned
    attached_only = sorted({n for _, n in insertions} - cited_by_model)
    result.attached = attached_only
    if attached_only:
        result.warnings.append(
            "attached citation(s) " + ", ".join(f"[{n}]" for n in attached_only)
            + " to sentence(s) the model left uncited"
        )
    all_cited = sorted(cited_by_model | set(attached_only))
    result.citations = [citation_for(n, passages[n - 1], attached=n in attached_only) for n in all_cited]
    _add_supporting_quotes(cleaned, result.citations, scorer)
    return result


def _add_supporting_quotes(text: str, citations: Sequence[Citation], scorer: SupportScorer) -> None:
    """For each citation, the sentence of its passage that best supports the answer sentences citing it
    (``Citation.quotes``: what the page highlights and the sources list shows)."""
    by_n = {c.n: c for c in citations}
    units = [(text[s:e], [n for _, _, ns in find_citations(text[s:e]) for n in ns if n in by_n])
             for s, e in _sentence_units(text)]
    units = [(_CITE.sub(" ", u), ns) for u, ns in units if ns]
    if not units:
        return
    unit_tokens = scorer.tokens([u for u, _ in units])
    for c in citations:
        sentences = [(s, e) for s, e in sentence_spans(c.text, keep_quotes=False) if c.text[s:e].strip()]
        if not sentences:
            continue
        sent_tokens = scorer.tokens([c.text[s:e] for s, e in sentences])
        chosen: list[tuple[int, int]] = []
        for (_, ns), toks in zip(units, unit_tokens):
            if c.n not in ns or not toks:
                continue
            support, i = max((scorer.overlap(toks, st), -i) for i, st in enumerate(sent_tokens))
            if support > 0 and sentences[-i] not in chosen:
                chosen.append(sentences[-i])
        c.quotes = [{"start": c.start + s, "end": c.start + e} for s, e in sorted(chosen)]


def renumber(text: str, citations: Sequence[Citation]) -> tuple[str, list[Citation]]:
    """The citations numbered in the order the text first cites them, 1, 2, 3 without gaps, and the text
    with its markers rewritten to match (citations it does not cite come last)."""
    order: dict[int, int] = {}
    for _, _, nums in find_citations(text):
        for n in nums:
            order.setdefault(n, len(order) + 1)
    for c in sorted(citations, key=lambda c: c.n):
        order.setdefault(c.n, len(order) + 1)
    if all(old == new for old, new in order.items()):
        return text, sorted(citations, key=lambda c: c.n)
    new_text = _CITE.sub(lambda m: format_group([order[n] for n in parse_group(m.group(1)) if n in order]), text)
    return new_text, sorted((replace(c, n=order[c.n]) for c in citations), key=lambda c: c.n)


def only_citations(text: str, numbers: set[int]) -> str:
    """The last guard: every "[n]" left in an answer is one of its citations; any other bracketed number
    (whatever wrote it) is written with parentheses, so no reader follows it to a passage."""
    def keep(m: re.Match) -> str:
        nums = parse_group(m.group(1))
        if nums and all(n in numbers for n in nums):
            return format_group(nums)  # "[bron 2]", "[1, 2]" -> "[2]", "[1][2]": one form
        return "(" + m.group(0)[1:-1].strip() + ")"

    # look-alikes the check does not read as citations ("［2］") are no citations either
    return re.sub(r"［\s*([^［］]{1,40}?)\s*］", r"(\1)", _CITE.sub(keep, text))
