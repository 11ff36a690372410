"""What reading a file may cost (``ParseLimits``, settings ``RAG_PARSE_*``) and how a file is refused
(``SkipFile`` with its reason; ``SkipTooLarge`` when it is too big once expanded: uploads say 413).
Shared by the extractors (``formats``), the child process that runs them (``safe_parse``) and the
loader (``documents``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SkipFile(Exception):
    """Raised while reading a file, with the reason it is skipped."""


class SkipTooLarge(SkipFile):
    """Skipped because it is too big once expanded (a decompression bomb, too much text): uploads say 413."""


MB = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """The limits one file is parsed under (settings ``RAG_PARSE_*``)."""

    expand_ratio: int = 50  # expanded bytes / text characters: at most this multiple of the file size ...
    max_text_chars: int = 50_000_000  # ... and never more than this (about 50 MB of text)
    min_budget: int = 1_000_000  # a small file may still expand to this much (a 2 KB PDF with a page of text)
    max_pages: int = 5_000
    max_paragraphs: int = 50_000  # a long report has a few thousand; python-docx reads ~5,000 a second
    max_nesting: int = 200  # HTML/XML element depth
    timeout: float = 60.0  # wall-clock seconds per file
    memory_mb: int = 1024  # address space of the parsing process

    @classmethod
    def from_settings(cls, s: Any) -> "ParseLimits":
        return cls(expand_ratio=s.parse_expand_ratio, max_text_chars=s.parse_max_text_chars,
                   min_budget=min(cls.min_budget, s.parse_max_text_chars), max_pages=s.parse_max_pages,
                   max_paragraphs=s.parse_max_paragraphs, max_nesting=s.parse_max_nesting,
                   timeout=s.parse_timeout, memory_mb=s.parse_memory_mb)

    def budget(self, file_size: int) -> int:
        """How far a file of ``file_size`` bytes may expand (decompressed bytes, text characters)."""
        return min(self.max_text_chars, max(self.min_budget, file_size * self.expand_ratio))

    def too_big(self, what: str, size: int, file_size: int) -> str:
        """The reason for a file that expands past its budget."""
        return (f"too large once expanded: {what} {_size(size)} (at most {_size(self.budget(file_size))}: "
                f"{self.expand_ratio}x the file size, never more than {_size(self.max_text_chars)}; "
                "RAG_PARSE_EXPAND_RATIO, RAG_PARSE_MAX_TEXT_CHARS)")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"
