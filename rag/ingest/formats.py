"""Articles in other formats than Markdown: PDF (``pypdf``), Word (``python-docx``) and saved web
pages (``trafilatura``). Each becomes a :class:`~rag.schema.Document` whose ``text`` is the
extracted text: that text is what gets indexed, and chunk offsets point into it.

* PDF: the text of every page, reflowed into paragraphs, pages separated by a blank line. Where
  each page starts is kept in ``metadata["pages"]`` (``[[offset, page number], ...]``), so every
  chunk knows its page (:func:`page_at`) and citations say ``"page": 3``.
* DOCX: paragraphs and headings (headings as ``#`` lines); title from the document properties or
  the first heading; author and date from the properties.
* HTML: the main article text with its title, author, date and URL; navigation, cookie banners,
  related-article lists and footers stay out.

A file that cannot be used (damaged or encrypted PDF, PDF without text, empty Word file, web page
without an article) raises :class:`~SkipFile` with the reason.
"""

from __future__ import annotations

import bisect
import io
import logging
import re
from typing import Any, Callable

from rag.schema import Document

log = logging.getLogger(__name__)

FORMAT_SUFFIXES = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html"}


# ============================================================================ entry point

def extract(kind: str, data: bytes) -> tuple[str | None, str, dict[str, Any]]:
    """(title, text, metadata) of a file's bytes; ``kind`` is "pdf", "docx" or "html"."""
    return EXTRACTORS[kind](data)


def page_at(metadata: dict[str, Any] | None, offset: int) -> int | None:
    """The page number (from 1) of the character at ``offset`` in a PDF document's text, or None
    for documents without pages."""
    pages = (metadata or {}).get("pages")
    if not pages:
        return None
    i = bisect.bisect_right([p[0] for p in pages], offset) - 1
    return int(pages[max(i, 0)][1])


def page_parts(doc: Document) -> list[tuple[int, str]]:
    """``(offset, text)`` of every page of a PDF document (so that no chunk crosses a page
    boundary), or the whole text at offset 0 for other documents."""
    pages = (doc.metadata or {}).get("pages")
    if not pages:
        return [(0, doc.text)]
    starts = [int(p[0]) for p in pages] + [len(doc.text)]
    return [(starts[i], doc.text[starts[i]:starts[i + 1]]) for i in range(len(pages))]


class SkipFile(Exception):
    """Raised while reading a file, with the reason it is skipped."""


def _skip(reason: str) -> Exception:
    return SkipFile(reason)


# ============================================================================ PDF

def reflow(page_text: str) -> str:
    """One PDF page's extracted lines as paragraphs: words hyphenated across a line break are
    joined, lines inside a paragraph become one line, and a short line that ends a sentence (or a
    blank line) ends the paragraph. Paragraphs are separated by a blank line."""
    lines = [ln.strip() for ln in page_text.replace("\r", "\n").split("\n")]
    width = max((len(ln) for ln in lines), default=0)
    paragraphs: list[str] = []
    current = ""
    for ln in lines:
        if not ln:
            if current:
                paragraphs.append(current)
                current = ""
            continue
        if current.endswith("-") and len(current) > 1 and current[-2].isalpha() and ln[:1].islower():
            current = current[:-1] + ln
        else:
            current = f"{current} {ln}" if current else ln
        if ln[-1:] in ".!?:”\"'" and len(ln) < 0.8 * width:
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _pdf_date(value: Any) -> str:
    s = str(value or "")
    m = re.match(r"(?:D:)?(\d{4})(\d{2})?(\d{2})?", s)
    if not m:
        return ""
    y, mo, d = m.group(1), m.group(2), m.group(3)
    return "-".join(x for x in (y, mo, d) if x)


def extract_pdf(data: bytes) -> tuple[str | None, str, dict[str, Any]]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")  # many PDFs are "encrypted" with an empty user password
            except Exception:
                ok = 0
            if not ok:
                raise _skip("encrypted PDF (it needs a password to open)")
        texts = []
        for page in reader.pages:
            texts.append(page.extract_text() or "")
        info = reader.metadata or {}
    except (PdfReadError, PdfStreamError, FileNotDecryptedError, ValueError, KeyError, TypeError,
            AttributeError, IndexError, OSError, RecursionError) as e:
        raise _skip(f"damaged PDF ({type(e).__name__}: {str(e)[:160] or 'unreadable'})") from None
    text_parts: list[str] = []
    pages: list[list[int]] = []
    pos = 0
    for number, raw in enumerate(texts, start=1):
        body = reflow(raw)
        if not body:
            continue
        if text_parts:
            text_parts.append("\n\n")
            pos += 2
        pages.append([pos, number])
        text_parts.append(body)
        pos += len(body)
    if not text_parts:
        raise _skip(f"PDF without text ({len(texts)} page(s), probably scanned images; needs OCR)")
    text = "".join(text_parts) + "\n"
    title = str(info.get("/Title") or "").strip() or None
    if title is None:
        first = text.split("\n", 1)[0]
        title = first[:200] if len(first) <= 200 else None
    meta = {"author": str(info.get("/Author") or "").strip(), "date": _pdf_date(info.get("/CreationDate")),
            "pages": pages, "page_count": len(texts)}
    return title, text, meta


# ============================================================================ DOCX

def _heading_level(style_name: str) -> int | None:
    name = (style_name or "").lower()
    if name == "title":
        return 1
    m = re.match(r"(?:heading|kop)\s*(\d)", name)
    return int(m.group(1)) if m else None


def extract_docx(data: bytes) -> tuple[str | None, str, dict[str, Any]]:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise _skip(f"not a valid Word document ({type(e).__name__})") from None
    blocks: list[str] = []
    first_heading = None
    for p in document.paragraphs:
        line = " ".join(p.text.split())
        if not line:
            continue
        level = _heading_level(p.style.name if p.style is not None else "")
        if level:
            first_heading = first_heading or line
            blocks.append("#" * min(level, 6) + " " + line)
        else:
            blocks.append(line)
    if not blocks:
        raise _skip("empty Word document (no text)")
    props = document.core_properties
    title = (props.title or "").strip() or first_heading or blocks[0][:200]
    date = props.created.date().isoformat() if props.created else ""
    return title, "\n\n".join(blocks) + "\n", {"author": (props.author or "").strip(), "date": date}


# ============================================================================ HTML (saved web pages)

_TITLE_TAG = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_OG_TITLE = re.compile(r"<meta[^>]+(?:property|name)=[\"'](?:og:title|twitter:title)[\"'][^>]*>", re.I)
_CONTENT = re.compile(r"content=[\"']([^\"']*)[\"']", re.I)
MIN_ARTICLE_CHARS = 1  # trafilatura decides what is an article; any text it keeps counts


def _page_title(raw: str, extracted: str | None) -> str | None:
    """og:title, else trafilatura's title when it is the <title> without the site name, else
    <title>, else trafilatura's title (usually the <h1>)."""
    import html as html_lib

    m = _OG_TITLE.search(raw)
    if m:
        c = _CONTENT.search(m.group(0))
        if c and c.group(1).strip():
            return " ".join(html_lib.unescape(c.group(1)).split())
    t = _TITLE_TAG.search(raw)
    tag = " ".join(html_lib.unescape(t.group(1)).split()) if t else ""
    if extracted and tag and extracted in tag:
        return extracted
    return tag or extracted


def extract_html(data: bytes) -> tuple[str | None, str, dict[str, Any]]:
    import trafilatura

    try:
        result = trafilatura.bare_extraction(data, with_metadata=True, favor_precision=True, include_comments=False,
                                             include_tables=True, include_images=False)
    except Exception as e:  # lxml or trafilatura failing on a broken page
        raise _skip(f"unreadable web page ({type(e).__name__})") from None
    body = getattr(result, "text", None) if result is not None else None
    if not body or len(body.strip()) < MIN_ARTICLE_CHARS:
        raise _skip("web page without an article (only navigation, banners or lists)")
    paragraphs = [" ".join(line.split()) for line in body.split("\n")]
    text = "\n\n".join(p for p in paragraphs if p) + "\n"
    raw = data.decode("utf-8", errors="replace")
    title = _page_title(raw, getattr(result, "title", None))
    meta = {"author": getattr(result, "author", None) or "", "date": getattr(result, "date", None) or "",
            "url": getattr(result, "url", None) or ""}
    return title, text, meta


EXTRACTORS: dict[str, Callable[[bytes], tuple[str | None, str, dict[str, Any]]]] = {
    "pdf": extract_pdf, "docx": extract_docx, "html": extract_html,
}
