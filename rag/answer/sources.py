"""An answer as plain text for clients that show only text (OpenAI-compatible chat apps, MCP):
the cited answer with its sources listed under it.

    Kim Jong-un heeft een dochter [1].

    Bronnen:
    [1] Dochter van Kim Jong-un — „Kim Jong-un verscheen met zijn dochter …”
"""

from __future__ import annotations

from typing import Any, Iterable

from rag.answer.prompt import detect_language

QUOTE_CHARS = 220
SOURCES_HEADER = {"nl": "Bronnen:", "en": "Sources:"}


def short_quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """The passage on one line, cut at a word boundary with an ellipsis when longer than ``limit``."""
    s = " ".join(str(text).split())
    if len(s) <= limit:
        return s
    cut = s[:limit].rsplit(" ", 1)[0] if " " in s[:limit] else s[:limit]
    return cut.rstrip(",;:") + " …"


def _get(c: Any, key: str, default: Any = None) -> Any:
    return c.get(key, default) if isinstance(c, dict) else getattr(c, key, default)


def source_line(c: Any) -> str:
    """``[n] title, p. 3 — „quote”`` for one citation (a ``Citation`` or its JSON dict)."""
    page = _get(c, "page")
    where = f", p. {page}" if page else ""
    return f"[{_get(c, 'n')}] {_get(c, 'title')}{where} — „{short_quote(_get(c, 'text', ''))}”"


def sources_block(citations: Iterable[Any], language: str = "nl") -> str:
    """The list of sources (with its header), or "" when there are none."""
    lines = [source_line(c) for c in citations]
    if not lines:
        return ""
    return SOURCES_HEADER.get(language, SOURCES_HEADER["nl"]) + "\n" + "\n".join(lines)


def answer_with_sources(answer: str, citations: Iterable[Any], question: str = "") -> str:
    """The answer text, then a blank line and its sources (nothing added when it cites nothing)."""
    block = sources_block(citations, detect_language(question or answer))
    text = answer.rstrip()
    return f"{text}\n\n{block}" if block else text
