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
    """The limits one file is read under (settings ``RAG_PARSE_*``). Every budget grows with the file and
    has a small floor, so a file of a few KB can never become megabytes of text or hundreds of passages
    (issue 37: a 3.7 KB PDF gave 780,000 characters and 1,398 passages under a 1 MB floor)."""

    expand_ratio: int = 50  # decompressed bytes (PDF streams, zip members) at most this multiple of the file size ...
    max_text_chars: int = 50_000_000  # ... and text never more than this (about 50 MB)
    min_budget: int = 256 * 1024  # a small file may still decompress to this much (a 2 KB PDF with a page of text)
    text_ratio: int = 10  # characters of text at most this multiple of the file size (real PDF and Word files: < 3)
    min_text_chars: int = 20_000  # ... or this many for a small file (about eight pages)
    passage_bytes: int = 64  # at most one passage per this many bytes of the file ...
    min_passages: int = 100  # ... or this many for a small file
    max_pages: int = 5_000
    max_paragraphs: int = 50_000  # a long report has a few thousand; python-docx reads ~5,000 a second
    max_nesting: int = 200  # HTML/XML element depth
    timeout: float = 60.0  # wall-clock seconds per file
    memory_mb: int = 1024  # address space of the parsing process

    @classmethod
    def from_settings(cls, s: Any) -> "ParseLimits":
        return cls(expand_ratio=s.parse_expand_ratio, max_text_chars=s.parse_max_text_chars,
                   min_budget=min(cls.min_budget, s.parse_max_text_chars),
                   text_ratio=s.parse_text_ratio, passage_bytes=s.parse_passage_bytes,
                   max_pages=s.parse_max_pages,
                   max_paragraphs=s.parse_max_paragraphs, max_nesting=s.parse_max_nesting,
                   timeout=s.parse_timeout, memory_mb=s.parse_memory_mb)

    def budget(self, file_size: int) -> int:
        """How far a file of ``file_size`` bytes may decompress (bytes)."""
        return min(self.max_text_chars, max(self.min_budget, file_size * self.expand_ratio))

    def text_budget(self, file_size: int) -> int:
        """How many characters of text a file of ``file_size`` bytes may give."""
        return min(self.max_text_chars, max(self.min_text_chars, file_size * self.text_ratio))

    def max_passages(self, file_size: int) -> int:
        """How many passages (chunks) a file of ``file_size`` bytes may become."""
        return max(self.min_passages, file_size // self.passage_bytes)

    def too_big(self, what: str, size: int, file_size: int) -> str:
        """The reason for a file that decompresses past its budget."""
        return (f"too large once expanded: {what} {_size(size)} (at most {_size(self.budget(file_size))}: "
                f"{self.expand_ratio}x the file size or {_size(self.min_budget)} for a small file, never more than "
                f"{_size(self.max_text_chars)}; RAG_PARSE_EXPAND_RATIO, RAG_PARSE_MAX_TEXT_CHARS)")

    def too_much_text(self, chars: int, file_size: int) -> str:
        """The reason for a file whose text is out of proportion to the file."""
        return (f"too large once expanded: text of {chars:,} characters from a file of {_size(file_size)} (at most "
                f"{self.text_budget(file_size):,}: {self.text_ratio}x the file size, or {self.min_text_chars:,} for a "
                "small file; RAG_PARSE_TEXT_RATIO)")

    def too_many_passages(self, passages: int, file_size: int) -> str:
        """The reason for a file that would become too many passages."""
        return (f"too large once expanded: {passages:,} passages from a file of {_size(file_size)} (at most "
                f"{self.max_passages(file_size):,}: one per {self.passage_bytes} bytes of the file, or "
                f"{self.min_passages} for a small file; RAG_PARSE_PASSAGE_BYTES)")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"
