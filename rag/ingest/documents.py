"""Load articles from a folder: Markdown, plain text and HTML.

The folder is walked iteratively (any depth), without following symbolic links.
Every entry that is not loaded is listed in ``LoadResult.skipped`` with its
reason: hidden, a symlink (loop, dangling, outside or inside the data folder),
not a regular file (FIFO, socket, device), unknown type, too large, empty,
binary, not decodable, bad front matter. Text is UTF-8 (with or without BOM),
or UTF-16/UTF-32 with a BOM. HTML markup inside Markdown and text files is taken
out as they are read (``rag.ingest.markup``).

File names are bytes on Linux and need not be valid UTF-8. Such a name is read
through Python's ``surrogateescape`` path (the bytes round-trip), and shown as
``display_path``: the undecodable bytes written as ``\\xNN``. So a document's
``path`` and every skipped path are always encodable text.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from rag.ingest.limits import SkipFile
from rag.ingest.markup import strip_markup
from rag.ingest.pubdate import vet_file_properties
from rag.ingest.safe_parse import SafeParser, extract
from rag.schema import Document

if TYPE_CHECKING:
    from rag.ingest.failures import ParseFailures
    from rag.ingest.limits import ParseLimits

SUPPORTED_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html",
                      ".pdf": "pdf", ".docx": "docx"}
FORMAT_KINDS = ("pdf", "docx", "html")  # read by rag/ingest/formats.py (pypdf, python-docx, trafilatura)
FRONT_MATTER_KEYS = ("title", "date", "url", "author")


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # path -> bytes of its file (its passage budget)

    def skip(self, doc: Document, reason: str) -> None:
        """A loaded document the build cannot use after all (too many passages for its file)."""
        self.documents = [d for d in self.documents if d is not doc]
        self.skipped.append(Skipped(doc.path, reason))


def doc_id_for(rel_path: str) -> str:
    """A stable id from the relative path: lower case, extension dropped, safe characters only."""
    stem = rel_path.rsplit(".", 1)[0] if "." in Path(rel_path).name else rel_path
    slug = re.sub(r"[^a-z0-9/_-]+", "-", stem.lower()).strip("-")
    return slug.replace("/", "--") or hashlib.sha1(rel_path.encode("utf-8", "backslashreplace")).hexdigest()[:12]


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def display_path(name: str | os.PathLike) -> str:
    """A file name as valid text: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Lone surrogates (e.g. from a YAML ``"\\ud800"`` escape) cannot be stored: U+FFFD instead."""
    return _SURROGATE.sub("\ufffd", text)


# ----------------------------------------------------------------------------- the folder walk

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


@dataclass
class Walk:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (path to open, display path), sorted
    skipped: list[Skipped] = field(default_factory=list)


def walk(data_dir: Path) -> Walk:
    """Every regular article file below ``data_dir``, and every other entry with the reason it is not read.

    Iterative, so any depth works; symbolic links are never followed (so the walk cannot
    leave the folder or run into a loop); a folder reached twice (a bind mount loop) is
    entered once. Sorted by path for a stable order.
    """
    root = Path(data_dir)
    root_real = os.path.realpath(root)
    files: list[tuple[tuple[str, ...], Path]] = []
    skipped: list[tuple[tuple[str, ...], str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while stack:
        folder, parts = stack.pop()
        try:
            st = os.stat(folder, follow_symlinks=not parts)  # the data folder itself may be a link
            if (st.st_dev, st.st_ino) in seen_dirs:
                skipped.append((parts, "folder already read under another path (a mount loop?)"))
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            skipped.append((parts or (".",), f"cannot open the folder: {e.strerror or e}"))
            continue
        for entry in entries:
            key = parts + (entry.name,)
            if entry.name.startswith("."):
                skipped.append((key, "hidden (the name starts with '.')"))
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as e:
                skipped.append((key, f"cannot read: {e.strerror or e}"))
                continue
            if stat.S_ISLNK(mode):
                skipped.append((key, _symlink_reason(entry.path, root_real)))
            elif stat.S_ISDIR(mode):
                if Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
                    skipped.append((key, "a folder, not a file (its contents are read like any other folder)"))
                stack.append((Path(entry.path), key))
            elif stat.S_ISREG(mode):
                files.append((key, Path(entry.path)))
            else:
                kind = next((what for test, what in _KINDS if test(mode)), "not a regular file")
                skipped.append((key, f"{kind}, not a regular file"))
    files.sort(key=lambda f: f[0])
    skipped.sort(key=lambda s: s[0])
    return Walk(
        files=[(path, display_path("/".join(key))) for key, path in files],
        skipped=[Skipped(display_path("/".join(key)), reason) for key, reason in skipped],
    )


def _symlink_reason(link: str, root_real: str) -> str:
    try:
        target = os.path.realpath(link, strict=True)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop (following it never reaches a file or folder)"
        if e.errno == errno.ENOENT:
            return "dangling symlink (its target does not exist)"
        return f"symlink that cannot be resolved: {e.strerror or e}"
    if os.path.commonpath([target, root_real]) != root_real:
        return "symlink to a place outside the data folder (symlinks are not followed)"
    inside = display_path(os.path.relpath(target, root_real))
    return f"symlink to '{inside}' inside the data folder (symlinks are not followed; the target is read as itself)"


def iter_article_files(data_dir: Path) -> list[Path]:
    """All regular files below ``data_dir`` that ``load_documents`` would try, sorted."""
    return [path for path, _ in walk(data_dir).files]


def load_documents(data_dir: Path, max_bytes: int = 5_000_000, limits: "ParseLimits | None" = None, *,
                   failures: "ParseFailures | None" = None, extra: dict[str, Path] | None = None) -> LoadResult:
    """Every article below ``data_dir``; PDF, Word and HTML files are parsed in one limited child
    process (``rag.ingest.safe_parse``), started at the first such file and stopped at the end.
    ``failures``: files that failed before are skipped unread, new failures are recorded
    (``rag.ingest.failures``). ``extra``: files read as if they were in the data folder under the
    given relative names (``rag add`` indexes a file before it appears there)."""
    with SafeParser(limits) as parser:
        return _load_documents(Path(data_dir), max_bytes, parser, failures, extra or {})


def _load_documents(data_dir: Path, max_bytes: int, parser, failures=None, extra: dict[str, Path] | None = None) -> LoadResult:
    result = LoadResult()
    if not data_dir.is_dir():
        result.skipped.append(Skipped(display_path(data_dir), "data folder does not exist"))
        return result
    found = walk(data_dir)
    skipped, files = list(found.skipped), found.files
    if extra:  # `rag add`'s own staged files are read under their names, not listed as hidden
        staged = {display_path(Path(p).name) for p in extra.values() if Path(p).parent.resolve() == data_dir.resolve()}
        skipped = [s for s in skipped if s.path not in staged]
        files = sorted([*files, *((Path(p), rel) for rel, p in extra.items())], key=lambda f: f[1].split("/"))
    seen_ids: dict[str, str] = {}
    seen_paths: set[str] = set()
    for path, rel in files:
        if rel in seen_paths:  # a literal "\xe9" in one name and an undecodable byte in another
            skipped.append(Skipped(rel, "the same name as another file once undecodable bytes are written as \\xNN"))
            continue
        seen_paths.add(rel)
        try:
            doc = load_file(path, rel, max_bytes, parser=parser, failures=failures)
        except SkipFile as e:
            skipped.append(Skipped(rel, str(e)))
            continue
        if doc.doc_id in seen_ids:
            skipped.append(Skipped(rel, f"same document id as {seen_ids[doc.doc_id]}"))
            continue
        seen_ids[doc.doc_id] = rel
        result.documents.append(doc)
        try:
            result.sizes[rel] = path.stat().st_size
        except OSError:
            pass
    result.skipped = sorted(skipped, key=lambda s: s.path.split("/"))
    return result


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes -- only if it is a regular file (not a link, FIFO or device) of at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SkipFile("a symlink (symlinks are not followed)") from None
        raise SkipFile(f"cannot read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as fh:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SkipFile("not a regular file")
            if st.st_size > max_bytes:
                raise SkipFile(f"too large: {st.st_size:,} bytes (limit {max_bytes:,}; set RAG_MAX_FILE_BYTES)")
            data = fh.read(max_bytes + 1)
        except OSError as e:
            raise SkipFile(f"cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:  # it grew while we looked
        raise SkipFile(f"too large: more than {max_bytes:,} bytes (set RAG_MAX_FILE_BYTES)")
    return data


# the BOMs we honour, longest first (the UTF-32 LE BOM starts with the UTF-16 LE one)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
         (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
         (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def decode_text(data: bytes) -> str:
    """Text from bytes: UTF-8 (BOM optional), or UTF-16/32 with a BOM. Raises ``SkipFile`` with the reason."""
    codec, label = next(((c, lbl) for bom, c, lbl in _BOMS if data.startswith(bom)), ("utf-8", "UTF-8"))
    if codec == "utf-8" and b"\x00" in data[:8192]:
        raise SkipFile("binary file (contains NUL bytes; UTF-16 text needs a byte order mark)")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as e:
        raise SkipFile(f"not valid {label} (byte {e.start})") from None
    head = text[:8192]
    if "\x00" in head or len(_CONTROL.findall(head)) > len(head) / 10:
        raise SkipFile("binary file (control characters)")
    if not text.strip():
        raise SkipFile("empty file")
    return text


def load_file(path: Path, rel: str, max_bytes: int, limits: "ParseLimits | None" = None, parser=None,
              failures: "ParseFailures | None" = None) -> Document:
    """One article file as a Document, or ``SkipFile`` with the reason. PDF, Word and HTML are parsed
    by ``parser`` (a ``rag.ingest.safe_parse.SafeParser``), or by a child process started for this file;
    with ``failures``, bytes that failed before are not parsed again (``rag.ingest.failures``)."""
    kind = SUPPORTED_SUFFIXES.get(Path(rel).suffix.lower())
    if kind is None:
        raise SkipFile(f"unsupported file type '{Path(rel).suffix or '(none)'}' (use .md, .txt, .html, .pdf or .docx)")
    data = read_bytes(path, max_bytes)
    if not data.strip():
        raise SkipFile("empty file")
    if kind in FORMAT_KINDS:
        sha = file_hash(data)
        remembered = failures.recall(sha, rel) if failures is not None else None
        if remembered is not None:
            raise SkipFile(remembered)
        try:
            title, text, meta = extract(kind, data, limits, parser=parser)
            if not text.strip():
                raise SkipFile("no text")
        except SkipFile as e:
            if failures is None:
                raise
            raise type(e)(failures.record(sha, rel, str(e))) from None
        meta = vet_file_properties(meta, kind, written=path.stat().st_mtime)  # no conversion time as a date
        return Document(doc_id=doc_id_for(rel), path=rel, title=(title or Path(rel).stem).strip(), text=text,
                        metadata={k: v for k, v in meta.items() if v}, sha256=file_hash(data))
    raw = decode_text(data).replace("\r\n", "\n").replace("\r", "\n")
    meta, text = split_front_matter(raw)
    text = strip_markup(text)  # inline HTML copied from web pages is not the article's text (rag.ingest.markup)
    meta = {k: (v if k == "url" else _plain_value(v)) for k, v in meta.items()}
    title = meta.get("title") or first_heading(text) or first_line(text)
    if not text.strip():
        raise SkipFile("no text after removing markup and front matter")
    title = (title or Path(rel).stem).strip()
    return Document(
        doc_id=doc_id_for(rel), path=rel, title=_clean(title), text=_clean(text),
        metadata={_clean(k): _clean(v) for k, v in meta.items() if v}, sha256=file_hash(data),
    )


def _plain_value(value: str) -> str:
    """A front-matter value without HTML markup (on one line when there was some)."""
    plain = strip_markup(value)
    return value if plain == value else " ".join(plain.split())


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)\n", re.S)
MAX_META_CHARS = 1000  # per value; a YAML alias in a list could otherwise repeat a long string without end
MAX_META_ITEMS = 50


def split_front_matter(raw: str) -> tuple[dict[str, str], str]:
    """YAML front matter between ``---`` lines, read with PyYAML. Returns (metadata, rest of the text).

    Every value stays text, as written (YAML's base loader: ``2024-05-01`` stays that string,
    ``yes`` stays "yes"); keys are lower-cased; a list becomes "a, b"; nested mappings and empty
    values are dropped. A block that is not a mapping is not front matter: the text is kept whole.
    Invalid YAML skips the file with the parser's reason.
    """
    m = _FRONT_MATTER.match(raw)
    if not m:
        return {}, raw
    try:
        data = yaml.load(m.group(1), Loader=getattr(yaml, "CBaseLoader", yaml.BaseLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SkipFile(f"front matter is not valid YAML{where}: {problem} "
                       "(put a value with ': ' in quotes)") from None
    if not isinstance(data, dict):
        return {}, raw
    meta: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key.strip():
            continue
        if isinstance(value, list):
            value = ", ".join(v.strip()[:MAX_META_CHARS] for v in value[:MAX_META_ITEMS] if isinstance(v, str) and v.strip())
        if isinstance(value, str) and value.strip():
            meta[key.strip().lower()] = value.strip()[: MAX_META_CHARS * 10]
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
