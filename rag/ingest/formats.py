"""Articles in other formats than Markdown: PDF (``pypdf``), Word (``python-docx``) and saved web
pages (``trafilatura``). Each becomes a :class:`~rag.schema.Document` whose ``text`` is the
extracted text: that text is what gets indexed, and chunk offsets point into it.

* PDF: the text of every page, reflowed into paragraphs, pages separated by a blank line. Where
  each page starts is kept in ``metadata["pages"]`` (``[[offset, page number], ...]``), so every
  chunk knows its page (:func:`page_at`) and citations say ``"page": 3``.
* DOCX: paragraphs and headings (headings as ``#`` lines); title from the document properties or
  the first heading; author and creation time from the properties.
* HTML: the main article text with its title, author, date and URL; navigation, cookie banners,
  related-article lists and footers stay out.

A file's own date (PDF CreationDate, Word's created, a web page's date) goes into ``metadata["file_date"]``;
``rag.ingest.pubdate`` decides whether it is the article's (a date written in the text wins, and a
conversion time or a template's default is no publication date).

A file that cannot be used (damaged or encrypted PDF, PDF without text, empty Word file, web page
without an article) raises :class:`SkipFile` with the reason.

:func:`rag.ingest.safe_parse.extract` runs these extractors in a limited child process; each extractor
checks ``ParseLimits`` itself (expanded size, pages, paragraphs, nesting) and raises
:class:`SkipTooLarge` for a file too big once expanded.
"""

from __future__ import annotations

import bisect
import io
import logging
import re
from typing import Any, Callable

from rag.ingest.limits import ParseLimits, SkipFile, SkipTooLarge
from rag.ingest.pubdate import FILE_DATE_KEY
from rag.schema import Document


log = logging.getLogger(__name__)

FORMAT_SUFFIXES = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html"}


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


def _skip(reason: str) -> Exception:
    return SkipFile(reason)


def _too_large(reason: str) -> Exception:
    return SkipTooLarge(reason)


def _check_blocks(blocks: list[str], limits: ParseLimits, file_size: int) -> None:
    """The extracted text's size and paragraph count against the limits."""
    if len(blocks) > limits.max_paragraphs:
        raise _skip(f"too many paragraphs: more than {limits.max_paragraphs:,} (RAG_PARSE_MAX_PARAGRAPHS)")
    chars = sum(len(b) + 2 for b in blocks)
    if chars > limits.text_budget(file_size):
        raise _too_large(limits.too_much_text(chars, file_size))


# ============================================================================ PDF

HEADING_WIDTH = 0.6  # a line shorter than this share of the page's longest, not ending a sentence: a line of its own


def reflow(page_text: str) -> str:
    """One PDF page's extracted lines as paragraphs: words hyphenated across a line break are
    joined, lines inside a paragraph become one line, and a short line that ends a sentence (or a
    blank line) ends the paragraph. A short line that does not end a sentence, followed by a line
    that does not go on in lower case, is a paragraph of its own: a heading, a dateline ("Gepubliceerd:
    3 mei 2025") or a byline is not glued to the first sentence. Paragraphs are separated by a blank line."""
    lines = [ln.strip() for ln in page_text.replace("\r", "\n").split("\n")]
    width = max((len(ln) for ln in lines), default=0)
    paragraphs: list[str] = []
    current = ""
    for i, ln in enumerate(lines):
        if not ln:
            if current:
                paragraphs.append(current)
                current = ""
            continue
        if current.endswith("-") and len(current) > 1 and current[-2].isalpha() and ln[:1].islower():
            current = current[:-1] + ln
        else:
            current = f"{current} {ln}" if current else ln
        following = next((x for x in lines[i + 1:] if x), "")
        own_line = (len(ln) < HEADING_WIDTH * width and ln[-1:] not in "-,;" and not following[:1].islower())
        if (ln[-1:] in ".!?:”\"'" and len(ln) < 0.8 * width) or own_line:
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


def _pdf_configuration(limits: ParseLimits, budget: int) -> dict[str, int]:
    """pypdf's own limits, tightened to this file's budget."""
    return {
        "maximum_declared_stream_length": budget, "array_based_stream_maximum_output_length": budget,
        "jbig2_maximum_output_length": budget, "lzw_maximum_output_length": budget,
        "run_length_maximum_output_length": budget, "zlib_maximum_output_length": budget,
        "brotli_maximum_output_length": budget, "image_maximum_buffer_size": budget,
        "stream_decoding_work_maximum_length": 2 * budget,
        "page_tree_maximum_entries": 2 * limits.max_pages + 16, "page_tree_maximum_depth": limits.max_nesting,
        "page_tree_maximum_page_entries": 64 * limits.max_pages,
        "outline_maximum_depth": limits.max_nesting, "form_fields_maximum_depth": limits.max_nesting,
        "named_destinations_maximum_depth": limits.max_nesting,
    }


def extract_pdf(data: bytes, limits: ParseLimits | None = None) -> tuple[str | None, str, dict[str, Any]]:
    import pypdf
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PyPdfError


    limits = limits or ParseLimits()
    budget = limits.budget(len(data))
    try:
        with pypdf.apply_configuration(**_pdf_configuration(limits, budget)):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    ok = reader.decrypt("")  # many PDFs are "encrypted" with an empty user password
                except Exception:
                    ok = 0
                if not ok:
                    raise _skip("encrypted PDF (it needs a password to open)")
            try:  # what the file says, before walking a page tree that may be a trap
                declared = int(reader.trailer["/Root"]["/Pages"].get("/Count", 0))
            except Exception:
                declared = 0
            if declared > limits.max_pages:
                raise _skip(f"too many pages: {declared:,} (at most {limits.max_pages:,}; RAG_PARSE_MAX_PAGES)")
            n_pages = len(reader.pages)
            if n_pages > limits.max_pages:
                raise _skip(f"too many pages: {n_pages:,} (at most {limits.max_pages:,}; RAG_PARSE_MAX_PAGES)")
            texts = []
            chars = 0
            for page in reader.pages:
                contents = page.get_contents()  # decoded here, where its limit raises (extract_text swallows it)
                if contents is not None:
                    contents.get_data()
                texts.append(page.extract_text() or "")
                chars += len(texts[-1])
                if chars > limits.text_budget(len(data)):
                    raise _too_large(limits.too_much_text(chars, len(data)))
            info = reader.metadata or {}
    except LimitReachedError as e:
        msg = str(e)[:160]
        if "page" in msg.lower() and "tree" in msg.lower():
            raise _skip(f"hostile PDF page tree ({msg}; at most {limits.max_pages:,} pages)") from None
        if not re.search(r"decompress|output|length|size|buffer|work", msg, re.I):
            raise _skip(f"hostile or damaged PDF (LimitReachedError: {msg})") from None
        raise _too_large(f"too large once expanded: {msg} (budget {budget:,} bytes; RAG_PARSE_EXPAND_RATIO, "
                         "RAG_PARSE_MAX_TEXT_CHARS)") from None
    except (PyPdfError, FileNotDecryptedError, ValueError, KeyError, TypeError,
            AttributeError, IndexError, OSError, RecursionError, ZeroDivisionError, AssertionError) as e:
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
    _check_blocks(text.split("\n\n"), limits, len(data))
    title = str(info.get("/Title") or "").strip() or None
    if title is None:
        first = text.split("\n", 1)[0]
        title = first[:200] if len(first) <= 200 else None
    meta = {"author": str(info.get("/Author") or "").strip(), FILE_DATE_KEY: _pdf_date(info.get("/CreationDate")),
            "pages": pages, "page_count": len(texts)}
    return title, text, meta


# ============================================================================ DOCX

def _heading_level(style_name: str) -> int | None:
    name = (style_name or "").lower()
    if name == "title":
        return 1
    m = re.match(r"(?:heading|kop)\s*(\d)", name)
    return int(m.group(1)) if m else None


MAX_ZIP_MEMBERS = 2_000
_PARAGRAPH_TAGS = (b"<w:p>", b"<w:p ", b"<w:p/")


def _check_docx_zip(data: bytes, limits: ParseLimits) -> None:
    """Before python-docx unpacks anything: the zip's expanded size (its members' declared sizes,
    which zipfile holds the members to) and the number of paragraphs in the document body."""
    import zipfile

    budget = limits.budget(len(data))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise _skip(f"not a plausible Word document: {len(members):,} parts in the zip (at most {MAX_ZIP_MEMBERS:,})")
        total = sum(m.file_size for m in members)
        if total > budget:
            raise _too_large(limits.too_big("the zip expands to", total, len(data)))
        try:
            body = zf.getinfo("word/document.xml")
        except KeyError:
            return  # python-docx says what is wrong
        paragraphs = 0
        tail = b""
        with zf.open(body) as fh:
            while chunk := fh.read(1 << 20):
                window = tail + chunk
                paragraphs += sum(window.count(t) for t in _PARAGRAPH_TAGS)
                tail = window[-4:]  # a tag cut by the chunk boundary is counted with the next chunk, once
                if paragraphs > limits.max_paragraphs:
                    raise _skip(f"too many paragraphs: more than {limits.max_paragraphs:,} "
                                "(RAG_PARSE_MAX_PARAGRAPHS; a paragraph bomb?)")


def extract_docx(data: bytes, limits: ParseLimits | None = None) -> tuple[str | None, str, dict[str, Any]]:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from lxml.etree import LxmlError


    limits = limits or ParseLimits()
    try:
        _check_docx_zip(data, limits)
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, LxmlError,
            KeyError, ValueError, OSError, EOFError) as e:
        raise _skip(f"not a valid Word document ({type(e).__name__}: {str(e)[:120]})") from None
    blocks: list[str] = []
    first_heading = None
    style_names: dict[str | None, str] = {}
    for p in document.paragraphs:
        line = " ".join(p.text.split())
        if not line:
            continue
        style_id = p._p.style  # the style's name looked up once per style, not once per paragraph
        if style_id not in style_names:
            style_names[style_id] = p.style.name if p.style is not None else ""
        level = _heading_level(style_names[style_id])
        if level:
            first_heading = first_heading or line
            blocks.append("#" * min(level, 6) + " " + line)
        else:
            blocks.append(line)
    if not blocks:
        raise _skip("empty Word document (no text)")
    _check_blocks(blocks, limits, len(data))
    props = document.core_properties
    title = (props.title or "").strip() or first_heading or blocks[0][:200]
    created = props.created.isoformat() if props.created else ""  # a timestamp: template defaults are exact times
    return title, "\n\n".join(blocks) + "\n", {"author": (props.author or "").strip(), FILE_DATE_KEY: created}


# ============================================================================ HTML (saved web pages)

MIN_ARTICLE_CHARS = 1  # trafilatura decides what is an article; any text it keeps counts
TITLE_META = ("og:title", "twitter:title")
# trafilatura's date search, without its "extensive" guess from any year in the text ("sinds 2009")
DATE_PARAMS = {"extensive_search": False, "original_date": True}


def _html_tree(data: bytes, limits: ParseLimits):
    """The page parsed by lxml's HTML parser, after checking its size and nesting (iteratively)."""
    import lxml.etree
    import lxml.html

    budget = limits.budget(len(data))
    try:
        tree = lxml.html.document_fromstring(data, parser=lxml.html.HTMLParser(huge_tree=False, remove_comments=True))
    except (lxml.etree.LxmlError, ValueError) as e:
        raise _skip(f"unreadable web page ({type(e).__name__}: {str(e)[:120]})") from None
    depth = deepest = elements = 0
    for event, _ in lxml.etree.iterwalk(tree, events=("start", "end")):
        if event == "start":
            depth += 1
            elements += 1
            deepest = max(deepest, depth)
            if deepest > limits.max_nesting:
                raise _skip(f"nested more than {limits.max_nesting} elements deep (RAG_PARSE_MAX_NESTING)")
            if elements > budget // 8:
                raise _too_large(limits.too_big("a page of more than", elements, len(data)))
        else:
            depth -= 1
    if elements > 8 * limits.max_paragraphs:
        raise _skip(f"too many elements: {elements:,} (RAG_PARSE_MAX_PARAGRAPHS x 8)")
    return tree


def _page_title(tree, extracted: str | None) -> str | None:
    """og:title, else trafilatura's title when it is the <title> without the site name, else
    <title>, else trafilatura's title (usually the <h1>). Read from the parsed page (an attribute
    may hold any quote: "Zo'n raket: Kim's nieuwe wapen")."""
    for meta in tree.iter("meta"):
        name = (meta.get("property") or meta.get("name") or "").strip().lower()
        content = " ".join((meta.get("content") or "").split())
        if name in TITLE_META and content:
            return content
    t = tree.find(".//title")
    tag = " ".join((t.text_content() if t is not None else "").split())
    if extracted and tag and extracted in tag:
        return extracted
    return tag or extracted


def extract_html(data: bytes, limits: ParseLimits | None = None) -> tuple[str | None, str, dict[str, Any]]:
    import trafilatura


    limits = limits or ParseLimits()
    tree = _html_tree(data, limits)
    try:
        result = trafilatura.bare_extraction(data, with_metadata=True, favor_precision=True, include_comments=False,
                                             include_tables=True, include_images=False,
                                             date_extraction_params=DATE_PARAMS)
    except Exception as e:  # lxml or trafilatura failing on a broken page
        raise _skip(f"unreadable web page ({type(e).__name__})") from None
    body = getattr(result, "text", None) if result is not None else None
    if not body or len(body.strip()) < MIN_ARTICLE_CHARS:
        raise _skip("web page without an article (only navigation, banners or lists)")
    paragraphs = [p for p in (" ".join(line.split()) for line in body.split("\n")) if p]
    _check_blocks(paragraphs, limits, len(data))
    text = "\n\n".join(paragraphs) + "\n"
    title = _page_title(tree, getattr(result, "title", None))
    meta = {"author": getattr(result, "author", None) or "", FILE_DATE_KEY: getattr(result, "date", None) or "",
            "url": getattr(result, "url", None) or ""}
    return title, text, meta


EXTRACTORS: dict[str, Callable[[bytes], tuple[str | None, str, dict[str, Any]]]] = {
    "pdf": extract_pdf, "docx": extract_docx, "html": extract_html,
}
