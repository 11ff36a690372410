"""Sentence-aware chunking, sized in the embedding model's own tokens.

Pure functions: text in, character spans out. Every chunk keeps ``start``/``end``
offsets into the document text so that ``text[start:end] == chunk.text``.
The caller passes ``count_tokens`` (the embedding model's tokenizer) and a
``max_tokens`` limit; no chunk is ever longer than that limit.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

from rag.ingest.formats import page_at, page_parts
from rag.ingest.limits import ParseLimits, SkipTooLarge
from rag.ingest.pubdate import document_dating
from rag.schema import Chunk, Document

CountTokens = Callable[[str], int]

# Words after which a full stop does not end a sentence (Dutch and English), compared lower-cased
# and without the final dot.
ABBREVIATIONS = {
    # Dutch
    "o.a", "dr", "drs", "mr", "ir", "ing", "prof", "dhr", "mevr", "mw", "bijv", "bv", "d.w.z", "m.b.t", "t.a.v",
    "i.p.v", "z.g.a.n", "nl", "nr", "blz", "ca", "resp", "jl", "vlg", "evt", "incl", "excl", "m.a.w", "e.d",
    "e.a", "enz", "etc", "vs", "st", "jr", "sr", "mln", "mld", "mrd", "min", "max", "gen", "kol", "lt", "sgt",
    "aug", "sept", "okt", "nov", "dec", "jan", "feb", "apr", "afb", "zgn", "i.h.a", "t/m", "m.i", "a.s",
    # English
    "mr", "mrs", "ms", "e.g", "i.e", "u.s", "u.k", "u.n", "no", "inc", "ltd", "co", "corp", "dept", "fig", "approx",
}

_END = re.compile(r"[.!?…]+[\"'”’»)\]]*")
_OPENERS = "„“\"'‘«(["
_HEADING_LINE = re.compile(r"^[ \t]*#[^\n]*(?=\n)", re.M)
_BLOCK_START = re.compile(r"\n[ \t]*\n|\n(?=[ \t]*(?:#|[-*+] |\d+[.)] |>))")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Is the full stop at ``dot`` part of an abbreviation or an initial?"""
    if text[dot] != ".":
        return False
    i = dot
    while i > 0 and not text[i - 1].isspace() and text[i - 1] not in _OPENERS:
        i -= 1
    word = text[i:dot].lower()
    if not word:
        return False
    if word in ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha():  # an initial: "J. Park"
        return True
    return bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", word))  # o.a / d.w.z / e.g


_QUOTE = re.compile(r"[„“]([^„“”]{0,600}?)”|\"([^\"\n]{0,600}?)\"")


def _quoted_ranges(block: str) -> list[tuple[int, int]]:
    """Spans of double-quoted speech ("„...”", "“...”", straight quotes) that should not be cut."""
    return [(m.start(), m.end()) for m in _QUOTE.finditer(block)]


def _sentence_ends(block: str, keep_quotes: bool = True) -> Iterable[int]:
    if block.lstrip().startswith("#"):
        return  # a heading is one unit
    quoted = _quoted_ranges(block) if keep_quotes else []
    for m in _END.finditer(block):
        end = m.end()
        if any(qs < m.start() and end < qe for qs, qe in quoted):
            continue  # inside a quotation: keep the quote whole
        rest = block[end:]
        stripped = rest.lstrip()
        if not stripped:
            continue  # end of block: handled by the caller
        if len(stripped) == len(rest):
            continue  # no white space after: "3.2", "NOS.nl", "o.a.b"
        nxt = stripped[0]
        if not (nxt.isupper() or nxt.isdigit() or nxt in _OPENERS or stripped.startswith(",,")):
            continue  # "„... schoenen!” vertelt ze": the sentence goes on
        if _is_abbreviation(block, m.start() + len(m.group().rstrip("\"'”’»)]")) - 1):
            continue
        yield end


def sentence_spans(text: str, keep_quotes: bool = True) -> list[tuple[int, int]]:
    """Split ``text`` into sentences; returns (start, end) spans without surrounding white space.

    Blank lines, headings and list items always end a sentence. Within a paragraph a sentence
    ends at ``.``, ``!``, ``?`` (with any closing quotes or brackets kept on it) when followed by
    white space and an upper-case letter, digit or opening quote, and the dot is not part of an
    abbreviation ("o.a.", "dr.", "bijv.") or an initial. ``keep_quotes=False`` also ends sentences
    inside quoted speech (for quoting the one sentence that answers, not a whole quoted paragraph).
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    bounds = {m.start() for m in _BLOCK_START.finditer(text)}
    bounds |= {m.end() for m in _HEADING_LINE.finditer(text)}  # a heading ends at its line's end
    block_bounds = sorted(b for b in bounds if 0 < b < len(text)) + [len(text)]
    for bound in block_bounds:
        block = text[pos:bound]
        start = 0
        for end in _sentence_ends(block, keep_quotes):
            _add_span(spans, text, pos + start, pos + end)
            start = end
        _add_span(spans, text, pos + start, pos + len(block))
        pos = bound
    return spans


def _add_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def _split_long_span(text: str, start: int, end: int, count_tokens: CountTokens, max_tokens: int) -> list[tuple[int, int]]:
    """Cut a span that is too long for the model at word boundaries (or inside a giant word)."""
    pieces: list[tuple[int, int]] = []
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    cur_start: int | None = None
    cur_end = start
    for ws, we in words:
        if cur_start is None:
            if count_tokens(text[ws:we]) > max_tokens:
                pieces.extend(_split_giant_word(text, ws, we, count_tokens, max_tokens))
                continue
            cur_start, cur_end = ws, we
            continue
        if count_tokens(text[cur_start:we]) <= max_tokens:
            cur_end = we
        else:
            pieces.append((cur_start, cur_end))
            cur_start = None
            if count_tokens(text[ws:we]) > max_tokens:
                pieces.extend(_split_giant_word(text, ws, we, count_tokens, max_tokens))
            else:
                cur_start, cur_end = ws, we
    if cur_start is not None:
        pieces.append((cur_start, cur_end))
    return pieces


def _split_giant_word(text: str, start: int, end: int, count_tokens: CountTokens, max_tokens: int) -> list[tuple[int, int]]:
    pieces = []
    while start < end:
        size = end - start
        while size > 1 and count_tokens(text[start:start + size]) > max_tokens:
            size = max(1, size * 2 // 3)
        pieces.append((start, start + size))
        start += size
    return pieces


def chunk_spans(
    text: str, count_tokens: CountTokens, max_tokens: int, target_tokens: int | None = None, overlap_tokens: int = 0
) -> list[tuple[int, int]]:
    """Pack sentences into chunks of at most ``target_tokens`` (never more than ``max_tokens``).

    Neighbouring chunks share up to ``overlap_tokens`` of whole sentences at their border.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    target = min(target_tokens or max_tokens, max_tokens)
    overlap = max(0, min(overlap_tokens, target // 2))

    units: list[tuple[int, int]] = []  # sentences, long ones cut to fit
    for s, e in sentence_spans(text):
        if count_tokens(text[s:e]) > target:
            units.extend(_split_long_span(text, s, e, count_tokens, target))
        else:
            units.append((s, e))
    if not units:
        return []
    sizes = [count_tokens(text[s:e]) for s, e in units]

    def fits(i: int, j: int) -> bool:  # the real count of the joined text, checked once per chunk
        return count_tokens(text[units[i][0]:units[j - 1][1]]) <= target

    return [(units[i][0], units[j - 1][1]) for i, j in pack(sizes, target, overlap, fits)]


def pack(sizes: list[int], target: int, overlap: int = 0,
         fits: Callable[[int, int], bool] | None = None) -> list[tuple[int, int]]:
    """Greedy packing of consecutive units (sentences) with these token ``sizes`` into groups
    ``units[i:j]`` of at most ``target`` tokens; each group after the first starts with whole
    units from the end of the previous one, up to ``overlap`` tokens, and always moves forward.

    Packing goes by the summed sizes (one tokenizer call per sentence, not per candidate chunk);
    ``fits(i, j)``, when given, then checks the group for real and gives back units while it fails.
    """
    groups: list[tuple[int, int]] = []
    i = 0
    while i < len(sizes):
        j, total = i + 1, sizes[i]
        while j < len(sizes) and total + sizes[j] <= target:
            total += sizes[j]
            j += 1
        while fits is not None and j - 1 > i and not fits(i, j):
            j -= 1
        groups.append((i, j))
        if j >= len(sizes):
            break
        k, carried = j, 0
        while overlap and k - 1 > i and carried + sizes[k - 1] <= overlap:
            k -= 1
            carried += sizes[k]
        i = k
    return groups


def chunk_document(
    doc: Document, count_tokens: CountTokens, max_tokens: int, target_tokens: int | None = None, overlap_tokens: int = 0,
    limits: ParseLimits | None = None, file_size: int | None = None,
) -> list[Chunk]:
    """The passages of ``doc``. With ``limits`` and ``file_size`` (bytes of its file), a document of more
    passages than the file's budget (``ParseLimits.max_passages``) raises ``SkipTooLarge`` with the reason."""
    spans = [(off + s, off + e) for off, part in page_parts(doc)  # a PDF is chunked page by page (issue 14)
             for s, e in chunk_spans(part, count_tokens, max_tokens, target_tokens, overlap_tokens)]
    if limits is not None and file_size is not None and len(spans) > limits.max_passages(file_size):
        raise SkipTooLarge(limits.too_many_passages(len(spans), file_size))
    dated = document_dating(doc)
    return [
        Chunk(chunk_id=f"{doc.doc_id}#{n}", doc_id=doc.doc_id, title=doc.title, text=doc.text[s:e], start=s, end=e, ordinal=n,
              page=page_at(doc.metadata, s), date=dated.date, date_source=dated.source)
        for n, (s, e) in enumerate(spans)
    ]
