"""When an article appeared: an ISO date (``"2024-03-28"``) or None.

In this order:

1. the document's metadata ``date`` (front matter, or a PDF/DOCX/HTML property read by
   ``rag.ingest.formats``), when it holds a full date;
2. a publication line in the text, Dutch or English: "Een eerdere versie van dit artikel verscheen
   op 28 maart 2024 in NRC.", "Gepubliceerd: 3 mei 2023", "Published March 28, 2024",
   "First published on 2024-03-28";
3. an ISO date (``2024-03-28``) on a short byline-like line near the start or the end.

Otherwise None. A date needs day, month and year ("verscheen op 30 april" is no date); a year
or an event mentioned in the text ("sinds 2009", "Op vrijdag 19 januari 2024 was ik te gast") is
not a publication date, and a file's modification time never is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

MONTHS = {
    # Dutch
    "januari": 1, "februari": 2, "maart": 3, "april": 4, "mei": 5, "juni": 6, "juli": 7, "augustus": 8,
    "september": 9, "oktober": 10, "november": 11, "december": 12, "jan": 1, "feb": 2, "mrt": 3, "apr": 4,
    "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "okt": 10, "nov": 11, "dec": 12,
    # English
    "january": 1, "february": 2, "march": 3, "may": 5, "june": 6, "july": 7, "august": 8, "october": 10,
    "mar": 3, "oct": 10,
}
META_KEYS = ("date", "published", "publication_date", "pubdate")

_MONTH = "(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_WEEKDAY = (r"(?:(?:maandag|dinsdag|woensdag|donderdag|vrijdag|zaterdag|zondag|monday|tuesday|wednesday|thursday|"
            r"friday|saturday|sunday|ma|di|wo|do|vr|za|zo|mon|tue|wed|thu|fri|sat|sun)\.?,?\s+)?")
_DATE_FORMS = [
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>\d\d)-(?P<day>\d\d)(?![\d-])"),  # 2024-03-28
    re.compile(r"\b" + _WEEKDAY + r"(?P<day>\d{1,2})\s+" + _MONTH + r",?\s+" + _YEAR + r"\b", re.I),  # 28 maart 2024
    re.compile(r"\b" + _WEEKDAY + _MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+" + _YEAR + r"\b", re.I),  # March 28, 2024
    re.compile(r"\b(?P<day>\d{1,2})[-/.](?P<month>\d{1,2})[-/.]" + _YEAR + r"\b"),  # 28-03-2024 (day first)
]

# a word that says "this appeared on", then (within a few words) the date
_PUBLISHED = re.compile(
    r"\b(?:verscheen|verschenen|gepubliceerd|geplaatst|publicatiedatum|oorspronkelijk\s+gepubliceerd|"
    r"published|first\s+published|originally\s+published|appeared|posted)\b", re.I)
# narration uses the same verbs ("Kims dochter verscheen op 18 november 2022 bij een lancering"): a
# publication line is a short line of its own, or names the piece itself ("dit artikel", "this story")
_SELF = re.compile(r"\b(?:dit|deze|het|this|the)\s+(?:eerdere\s+|oorspronkelijke\s+|earlier\s+|original\s+)?"
                   r"(?:artikel|stuk|versie|interview|column|verhaal|bericht|verslag|article|story|piece|version|post|"
                   r"report)\b", re.I)
PUBLICATION_LINE_CHARS = 120
_DATE_LABEL = re.compile(r"^\W*(?:datum|date|publicatie|publication)\s*:", re.I)
_LOOKAHEAD = 60  # characters after the publication word in which the date must start
BYLINE_LINES = 4  # non-empty lines at the start and at the end that may be a byline
BYLINE_CHARS = 160  # a byline is a short line


def parse_date(text: str) -> str | None:
    """The first full date in ``text`` as ISO ``YYYY-MM-DD``, or None."""
    found = _first_date(str(text))
    return found[1] if found else None


def _first_date(text: str) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for form in _DATE_FORMS:
        for m in form.finditer(text):
            iso = _iso(m)
            if iso and (best is None or m.start() < best[0]):
                best = (m.start(), iso)
                break
    return best


def _iso(m: re.Match) -> str | None:
    month = m.group("month")
    month_n = int(month) if month.isdigit() else MONTHS.get(month.lower().rstrip("."))
    try:
        return date(int(m.group("year")), month_n or 0, int(m.group("day"))).isoformat()
    except (TypeError, ValueError):
        return None


def from_metadata(metadata: Mapping[str, object]) -> str | None:
    for key in META_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            iso = parse_date(value)
            if iso:
                return iso
    return None


def from_text(text: str) -> str | None:
    """A publication line anywhere in the text, else an ISO date on a byline near the start or end."""
    for line in text.splitlines():
        for m in _PUBLISHED.finditer(line):
            if len(line.strip()) > PUBLICATION_LINE_CHARS and not _SELF.search(_sentence_before(line, m.start())):
                continue
            found = _first_date(line[m.end():m.end() + _LOOKAHEAD + 30])
            if found and found[0] <= _LOOKAHEAD:
                return found[1]
        if _DATE_LABEL.match(line):
            iso = parse_date(line)
            if iso:
                return iso
    lines = [ln for ln in text.splitlines() if ln.strip()]
    edges = lines[:BYLINE_LINES] + lines[-BYLINE_LINES:]
    for line in edges:
        if len(line.strip()) <= BYLINE_CHARS and not line.lstrip().startswith("#"):
            m = _DATE_FORMS[0].search(line)
            if m and _iso(m):
                return _iso(m)
    return None


def _sentence_before(line: str, pos: int) -> str:
    """The part of the sentence in ``line`` before ``pos``."""
    head = line[:pos]
    cut = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    return head[cut + 1:]


def publication_date(metadata: Mapping[str, object] | None, text: str) -> str | None:
    """The article's publication date (ISO) from its metadata, else from its text, else None."""
    return from_metadata(metadata or {}) or from_text(text or "")


def document_date(doc) -> str | None:
    """``publication_date`` of a ``rag.schema.Document``."""
    return publication_date(doc.metadata, doc.text)
