"""When an article appeared: an ISO date (``"2024-03-28"``) or None, and where it was found.

In this order (``dating`` returns the date with its source, one of ``DATE_SOURCES``):

1. ``front_matter``: the ``date`` a Markdown article's front matter gives, when it holds a full date;
2. ``text``: a publication line in the text, Dutch or English: "Een eerdere versie van dit artikel
   verscheen op 28 maart 2024 in NRC.", "Gepubliceerd: 3 mei 2023", "Published March 28, 2024",
   "First published on 2024-03-28", "Datum: 02-05-2024";
3. ``byline``: an ISO date (``2024-03-28``) on a short byline-like line near the start or the end;
4. ``file_property``: the date a PDF, Word file or saved web page says of itself (``metadata["file_date"]``,
   read by ``rag.ingest.formats``), only when it is plausible (``file_date_problem``): not in the future,
   not a template's default (python-docx writes 2013-12-23 and author "python-docx" into every new file),
   and for PDF and Word not the moment the file was made (its creation date within a day of the time the
   file was written or read: a PDF printed from a web page today says "today", not when the article
   appeared).

A date written in the text wins over a file property. Otherwise None: a date needs day, month and year
("verscheen op 30 april" is no date); a year or an event mentioned in the text ("sinds 2009", "Op vrijdag
19 januari 2024 was ik te gast") is not a publication date, and a file's modification time never is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone

MONTHS = {
    # Dutch
    "januari": 1, "februari": 2, "maart": 3, "april": 4, "mei": 5, "juni": 6, "juli": 7, "augustus": 8,
    "september": 9, "oktober": 10, "november": 11, "december": 12, "jan": 1, "feb": 2, "mrt": 3, "apr": 4,
    "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "okt": 10, "nov": 11, "dec": 12,
    # English
    "january": 1, "february": 2, "march": 3, "may": 5, "june": 6, "july": 7, "august": 8, "october": 10,
    "mar": 3, "oct": 10,
}
META_KEYS = ("date", "published", "publication_date", "pubdate")  # front matter
FILE_DATE_KEY = "file_date"  # a file's own date property (PDF CreationDate, Word created, a web page's date)
DATE_SOURCES = ("front_matter", "text", "byline", "file_property")
# what a library's template writes into every file made from it: creation time -> author (python-docx's
# default.docx); that time, or its day with that author, is no article's date, and that author no article's
TEMPLATE_DEFAULTS = {"2013-12-23T23:15:00": "python-docx"}
TEMPLATE_AUTHORS = set(TEMPLATE_DEFAULTS.values())
CONVERSION_DAYS = 1  # a creation date this close to the file's writing (or to now) is the conversion's

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
    return from_publication_line(text) or from_byline(text)


def from_publication_line(text: str) -> str | None:
    """The date of a line that says the piece appeared ("Gepubliceerd: 3 mei 2025"), or of a date label."""
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
    return None


def from_byline(text: str) -> str | None:
    """An ISO date on a short line (not a heading) among the first or last few lines."""
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


@dataclass(frozen=True)
class Dated:
    date: str | None = None  # ISO YYYY-MM-DD
    source: str | None = None  # one of DATE_SOURCES when there is a date


def dating(metadata: Mapping[str, object] | None, text: str) -> Dated:
    """The article's publication date and where it was found (see the module doc), or ``Dated()``."""
    meta = metadata or {}
    for source, find in (("front_matter", lambda: from_metadata(meta)), ("text", lambda: from_publication_line(text or "")),
                         ("byline", lambda: from_byline(text or "")), ("file_property", lambda: _file_date(meta))):
        iso = find()
        if iso:
            return Dated(iso, source)
    return Dated()


def publication_date(metadata: Mapping[str, object] | None, text: str) -> str | None:
    """The article's publication date (ISO), or None (``dating`` without the source)."""
    return dating(metadata, text).date


def document_dating(doc) -> Dated:
    """``dating`` of a ``rag.schema.Document``."""
    return dating(doc.metadata, doc.text)


def document_date(doc) -> str | None:
    """``publication_date`` of a ``rag.schema.Document``."""
    return document_dating(doc).date


# ---------------------------------------------------------------------------- file properties

def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, timezone.utc).date()


def file_date_problem(value: str | None, *, author: str = "", kind: str | None = None, written: float | None = None,
                      now: float | None = None) -> str | None:
    """Why a file's own date property (``value``: ISO, a date or a timestamp) is not the article's date, or
    None when it is plausible. ``kind`` is the format ("pdf", "docx", "html"); ``written`` the file's
    modification time (epoch seconds); ``now`` the time of reading (default: now)."""
    iso = parse_date(value or "")
    if not iso:
        return "no full date"
    day = date.fromisoformat(iso)
    today = _day(time.time() if now is None else now)
    if (day - today).days > CONVERSION_DAYS:  # a day of slack for time zones
        return "in the future"
    for stamp, template_author in TEMPLATE_DEFAULTS.items():
        if str(value).startswith(stamp) or (iso == stamp[:10] and author.strip().lower() == template_author):
            return f"the default of the template the file was made from ({template_author})"
    if kind in ("pdf", "docx"):  # a creation date: of the file, which may be a conversion of the article
        for moment, what in ((written, "the day the file was written"), (now or time.time(), "today")):
            if moment is not None and abs((day - _day(moment)).days) <= CONVERSION_DAYS:
                return f"the moment the file was made ({what}), not when the article appeared"
    return None


def vet_file_properties(meta: Mapping[str, object], kind: str, written: float | None = None,
                        now: float | None = None) -> dict:
    """``meta`` of a PDF, Word file or web page without the properties that are not the article's: a date
    that ``file_date_problem`` rejects, and an author that is a template's default."""
    out = dict(meta)
    author = str(out.get("author") or "")
    raw = out.get(FILE_DATE_KEY)
    if raw and file_date_problem(str(raw), author=author, kind=kind, written=written, now=now):
        out.pop(FILE_DATE_KEY)
    if author.strip().lower() in TEMPLATE_AUTHORS:
        out.pop("author")
    return out


def _file_date(meta: Mapping[str, object]) -> str | None:
    value = meta.get(FILE_DATE_KEY)
    if isinstance(value, str) and not file_date_problem(value, author=str(meta.get("author") or "")):
        return parse_date(value)
    return None
