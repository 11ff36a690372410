"""An answer as plain text for clients that show only text (OpenAI-compatible chat apps, MCP):
the cited answer with its sources listed under it.

    Kim Jong-un heeft een dochter [1].

    Bronnen:
    [1] Dochter van Kim Jong-un (2024-03-28): Kim Jong-un verscheen met zijn dochter …
"""

from __future__ import annotations

from typing import Any, Iterable

from rag.text import detect_language, plain_text

QUOTE_CHARS = 300
SOURCES_HEADER = {"nl": "Bronnen:", "en": "Sources:"}


def short_quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """The text on one line, cut at a word boundary with an ellipsis when longer than ``limit``."""
    s = " ".join(str(text).split())
    if len(s) <= limit:
        return s
    cut = s[:limit].rsplit(" ", 1)[0] if " " in s[:limit] else s[:limit]
    return cut.rstrip(",;:") + " …"


def _get(c: Any, key: str, default: Any = None) -> Any:
    return c.get(key, default) if isinstance(c, dict) else getattr(c, key, default)


def cited_text(c: Any) -> str:
    """What citation ``c`` rests on, as plain text on one line: its cited sentences (``quotes``, exact
    spans of the passage; "…" between sentences that do not follow each other), else the passage."""
    text, start = _get(c, "text", "") or "", _get(c, "start", 0) or 0
    spans = sorted((int(_get(q, "start")) - start, int(_get(q, "end")) - start) for q in (_get(c, "quotes") or []))
    spans = [(s, e) for s, e in spans if 0 <= s < e <= len(text)]
    if not spans:  # the passage without its heading lines
        body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        return short_quote(plain_text(body or text))
    parts, last = [], None
    for s, e in spans:
        if last is not None and text[last:s].strip():
            parts.append("…")
        parts.append(plain_text(text[s:e]))
        last = e
    return short_quote(" ".join(parts), limit=2 * QUOTE_CHARS)


def source_label(c: Any) -> str:
    """``title (2024-03-28), p. 3`` of one citation: the title cleaned of Markdown, the date when known."""
    title = " ".join(plain_text(_get(c, "title", "") or "").split())
    date, page = _get(c, "date"), _get(c, "page")
    return title + (f" ({date})" if date else "") + (f", p. {page}" if page else "")


def source_line(c: Any) -> str:
    """``[n] title (date), p. 3: cited sentence(s)`` for one citation (a ``Citation`` or its JSON dict).
    No quotation marks are added: the sentences are the source's own words, its own quotes kept."""
    return f"[{_get(c, 'n')}] {source_label(c)}: {cited_text(c)}"


def sources_block(citations: Iterable[Any], language: str = "nl") -> str:
    """The list of sources (with its header), or "" when there are none."""
    lines = [source_line(c) for c in sorted(citations, key=lambda c: _get(c, "n") or 0)]
    if not lines:
        return ""
    return SOURCES_HEADER.get(language, SOURCES_HEADER["nl"]) + "\n" + "\n".join(lines)


NOT_FOUND = {"nl": "(niet gevonden in de bron)", "en": "(not found in the source)"}
OFF_QUESTION = {"nl": "(geen antwoord op de vraag)", "en": "(does not answer the question)"}


def mark_unverified(answer: str, verdicts: Iterable[Any], language: str = "nl") -> str:
    """The answer with every sentence the check did not verify marked after it, in words a reader of plain
    text sees ("… [2] (niet gevonden in de bron)"): what the chat page shows by colour."""
    marks = []
    for v in verdicts or ():
        kind = _get(v, "verdict")
        if kind in ("unsupported", "off_question"):
            table = NOT_FOUND if kind == "unsupported" else OFF_QUESTION
            marks.append((int(_get(v, "end")), " " + table.get(language, table["nl"])))
    text = answer
    for end, mark in sorted(marks, reverse=True):
        if 0 <= end <= len(text):
            text = text[:end] + mark + text[end:]
    return text


def answer_with_sources(answer: str, citations: Iterable[Any], question: str = "",
                        verdicts: Iterable[Any] = ()) -> str:
    """The answer text (unverified sentences marked), then a blank line and its sources (nothing added when
    it cites nothing)."""
    language = detect_language(question or answer)
    block = sources_block(citations, language)
    text = mark_unverified(answer, verdicts, language).rstrip()
    return f"{text}\n\n{block}" if block else text
