"""Load articles from a folder: Markdown, plain text and HTML.

A file that cannot be used (empty, binary, not decodable, too large, unknown
type) is skipped with its reason; the others are loaded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from .schema import Document

SUPPORTED_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html"}
FRONT_MATTER_KEYS = ("title", "date", "url", "author")


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def doc_id_for(rel_path: str) -> str:
    """A stable id from the relative path: lower case, extension dropped, safe characters only."""
    stem = rel_path.rsplit(".", 1)[0] if "." in Path(rel_path).name else rel_path
    slug = re.sub(r"[^a-z0-9/_-]+", "-", stem.lower()).strip("-")
    return slug.replace("/", "--") or hashlib.sha1(rel_path.encode()).hexdigest()[:12]


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iter_article_files(data_dir: Path) -> list[Path]:
    """All files below ``data_dir`` (recursively, hidden ones excluded), sorted for a stable order."""
    return sorted(
        p for p in data_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(data_dir).parts)
    )


def load_documents(data_dir: Path, max_bytes: int = 5_000_000) -> LoadResult:
    data_dir = Path(data_dir)
    result = LoadResult()
    if not data_dir.is_dir():
        result.skipped.append(Skipped(str(data_dir), "data folder does not exist"))
        return result
    seen_ids: dict[str, str] = {}
    for path in iter_article_files(data_dir):
        rel = path.relative_to(data_dir).as_posix()
        try:
            doc = load_file(path, rel, max_bytes)
        except SkipFile as e:
            result.skipped.append(Skipped(rel, str(e)))
            continue
        if doc.doc_id in seen_ids:
            result.skipped.append(Skipped(rel, f"same document id as {seen_ids[doc.doc_id]}"))
            continue
        seen_ids[doc.doc_id] = rel
        result.documents.append(doc)
    return result


class SkipFile(Exception):
    """Raised inside the loader with the reason a file is skipped."""


def load_file(path: Path, rel: str, max_bytes: int) -> Document:
    from .formats import load_formatted  # issue 14: PDF, DOCX and saved web pages (rag/formats.py)
    if (doc := load_formatted(path, rel, max_bytes)) is not None:
        return doc
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SkipFile(f"unsupported file type '{path.suffix or '(none)'}' (use .md, .txt or .html)")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SkipFile(f"too large: {size:,} bytes (limit {max_bytes:,}; set RAG_MAX_FILE_BYTES)")
        data = path.read_bytes()
    except OSError as e:
        raise SkipFile(f"cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise SkipFile("empty file")
    if b"\x00" in data[:8192]:
        raise SkipFile("binary file (contains NUL bytes)")
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SkipFile(f"not valid UTF-8 (byte {e.start})") from None
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")

    if kind == "html":
        title, text, meta = parse_html(raw)
    else:
        meta, text = split_front_matter(raw)
        title = meta.get("title") or first_heading(text) or first_line(text)
    if not text.strip():
        raise SkipFile("no text after removing markup and front matter")
    title = (title or Path(rel).stem).strip()
    return Document(
        doc_id=doc_id_for(rel), path=rel, title=title, text=text,
        metadata={k: v for k, v in meta.items() if v}, sha256=file_hash(data),
    )


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)\n", re.S)


def split_front_matter(raw: str) -> tuple[dict[str, str], str]:
    """Read simple YAML front matter (``key: value`` lines). Returns (metadata, rest of the text)."""
    m = _FRONT_MATTER.match(raw)
    if not m:
        return {}, raw
    meta: dict[str, str] = {}
    for line in m.group(1).splitlines():
        if ":" not in line or line.startswith((" ", "\t", "#")):
            continue
        key, value = line.split(":", 1)
        key = key.strip().lower()
        value = value.strip().strip("'\"")
        if key and value:
            meta[key] = value
    return meta, raw[m.end():]


def first_heading(text: str) -> str | None:
    m = re.search(r"^# +(.+?)\s*#*\s*$", text, re.M)
    return m.group(1).strip() if m else None


def first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            line = line.strip().lstrip("#").strip()
            return line[:200]
    return None


class _HTMLText(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "blockquote", "header", "footer"}
    SKIP = {"script", "style", "noscript", "template", "svg"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self.meta: dict[str, str] = {}
        self._stack: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        if tag == "meta":
            a = dict(attrs)
            name = (a.get("name") or a.get("property") or "").lower().split(":")[-1]
            if name in ("author", "date", "url") and a.get("content"):
                self.meta[name] = a["content"]
        if tag in self.BLOCK:
            self.parts.append("\n\n")
        self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass

    def handle_data(self, data):
        if self._skip:
            return
        current = self._stack[-1] if self._stack else ""
        if current == "title":
            self.title += data
            return
        if current == "h1":
            self.h1 += data
        self.parts.append(data)


def parse_html(raw: str) -> tuple[str | None, str, dict[str, str]]:
    p = _HTMLText()
    p.feed(raw)
    p.close()
    text = "".join(p.parts)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    title = " ".join(p.title.split()) or " ".join(p.h1.split()) or first_line(text)
    return title, text, p.meta
