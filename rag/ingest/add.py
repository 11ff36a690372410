"""Adding articles to the data folder: files (``rag add FILE``, uploads from the chat page) and web
pages (``rag add URL``, saved as Markdown with front matter).

Nothing is half-added: a file is checked (type, size, name, duplicate, readable as an article)
before it enters the data folder, and it arrives by writing a hidden temporary file (``Staged``)
that is then linked under its final name (which fails instead of overwriting when the name is
taken). ``rag add`` indexes the staged file first and links it as the commit of the new index
version, so a ``kill -9`` at any moment leaves the article in the data folder and the index, or in
neither (``rag.index.local.versions``); uploads link at once and index afterwards, undoing the link
when that fails (api/uploads.py).

A web page has one deadline (``--timeout``) for all of it: connecting, redirects, every byte of the
body (a server that drips its page is cut at the deadline), and reading it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.ingest.limits import ParseLimits

FETCH_TIMEOUT = 20.0  # seconds for one web page: fetching and reading it


class AddRefused(RagError):
    """The file or page cannot be added; the message says why. ``status`` is the HTTP status to use."""

    def __init__(self, message: str, status: int = 422, code: str = "not_an_article") -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # stable, for clients that word the message themselves (the chat page)


# why the loader skipped a file (rag.ingest.documents.SkipFile's reason) -> AddRefused.code
_SKIP_CODES = (("binary file", "binary_file"), ("empty file", "empty_file"), ("not valid ", "not_text"),
               ("no text", "no_text"), ("too large", "too_large"))


def skip_code(reason: str) -> str:
    return next((code for start, code in _SKIP_CODES if reason.startswith(start)), "not_an_article")


@dataclass
class Added:
    source: str
    path: str  # relative to the data folder
    doc_id: str
    title: str


def supported_suffixes() -> dict[str, str]:
    from rag.ingest.documents import SUPPORTED_SUFFIXES
    from rag.ingest.formats import FORMAT_SUFFIXES

    return {**SUPPORTED_SUFFIXES, **FORMAT_SUFFIXES}


def is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


# ============================================================================ checks

def safe_name(filename: str) -> str:
    """The file name to store, or ``AddRefused``: no folders, no '..', no hidden or control characters."""
    from rag.ingest.documents import display_path

    name = unicodedata.normalize("NFC", filename or "").strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a Linux file name with bytes that are not UTF-8 (read as surrogates)
        raise AddRefused(f"the file name '{display_path(filename)}' is not valid UTF-8; rename the file "
                         "(e.g. with `convmv` or by hand) and add it again", 400) from None
    if not name:
        raise AddRefused("the file has no name", 400, "bad_name")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise AddRefused(f"the file name '{filename}' contains a folder path; send a plain file name", 400, "bad_name")
    if name.startswith(".") or any(ord(ch) < 32 for ch in name) or "\x7f" in name:
        raise AddRefused(f"the file name '{filename}' is not allowed (hidden or control characters)", 400, "bad_name")
    hidden = _INVISIBLE.search(name)
    if hidden:  # "\u202egpj.md" shows as "dm.jpg"
        shown = name.encode("ascii", "backslashreplace").decode()
        raise AddRefused(f"the file name '{shown}' is not allowed: it holds "
                         f"U+{ord(hidden.group()):04X}, a control or text-direction character that changes how the "
                         "name looks; rename the file", 400, "bad_name")
    if len(name.encode()) > 200:
        raise AddRefused("the file name is too long (at most 200 bytes)", 400, "bad_name")
    return name


# C1 controls, and the characters that reorder or hide text (bidi embeddings, overrides, isolates and marks)
_INVISIBLE = re.compile("[\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def file_mode() -> int:
    """The mode a new file gets here (0666 less the umask: 0644 as a rule), read without changing the
    umask (``os.umask`` sets it for every thread of a server while it looks)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = 0o022
    return 0o666 & ~umask


def check_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    kinds = supported_suffixes()
    if suffix not in kinds:
        allowed = ", ".join(sorted(kinds))
        raise AddRefused(f"unsupported file type '{suffix or '(none)'}' for '{name}' (supported: {allowed})", 415, "unsupported_type")
    return suffix


def _existing(data_dir: Path) -> list[Path]:
    from rag.ingest.documents import iter_article_files

    return iter_article_files(data_dir) if data_dir.is_dir() else []


def check_not_duplicate(data_dir: Path, name: str, data: bytes) -> None:
    """Refuse a name (or document id) already in use, or the same bytes under another name."""
    from rag.ingest.documents import doc_id_for

    if (data_dir / name).exists():
        raise AddRefused(f"'{name}' is already in the data folder; rename the file or remove the old one first", 409, "duplicate")
    new_id = doc_id_for(name)
    digest = hashlib.sha256(data).hexdigest()
    for p in _existing(data_dir):
        rel = p.relative_to(data_dir).as_posix()
        if doc_id_for(rel) == new_id:
            raise AddRefused(f"'{name}' would get the same document id ('{new_id}') as '{rel}'; rename the file", 409, "duplicate")
        try:
            same = p.stat().st_size == len(data) and hashlib.sha256(p.read_bytes()).hexdigest() == digest
        except OSError:
            continue
        if same:
            raise AddRefused(f"the same file is already in the data folder as '{rel}'", 409, "duplicate")


# ============================================================================ storing

STAGED_PREFIX = ".adding-"


@dataclass
class Staged:
    """A checked article in a hidden file of the data folder (not read as an article), waiting to be
    linked under its name (``commit``); ``discard`` removes the hidden file (the linked one stays)."""

    tmp: Path
    data_dir: Path
    added: Added

    @property
    def name(self) -> str:
        return self.added.path

    def commit(self) -> None:
        try:
            os.link(self.tmp, self.data_dir / self.name)  # fails, rather than overwrites, when the name was taken
        except FileExistsError:
            raise AddRefused(f"'{self.name}' is already in the data folder", 409, "duplicate") from None

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def clean_staged(data_dir: Path) -> None:
    """Remove staged files left by an add that was killed (their process is gone)."""
    for p in Path(data_dir).glob(STAGED_PREFIX + "*") if Path(data_dir).is_dir() else []:
        pid = p.name[len(STAGED_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def stage_bytes(data_dir: Path, name: str, data: bytes, max_bytes: int, source: str | None = None,
                limits: "ParseLimits | None" = None) -> Staged:
    """Check ``data`` as an article named ``name`` and stage it in ``data_dir``, or raise ``AddRefused``
    with nothing written. PDF, Word and HTML are parsed under ``limits`` in a child process
    (``rag.ingest.safe_parse``): too big once expanded is 413, a broken or hostile file 422."""
    from rag.ingest.documents import load_file
    from rag.ingest.limits import SkipFile, SkipTooLarge

    name = safe_name(name)
    check_type(name)
    if len(data) > max_bytes:
        raise AddRefused(f"'{name}' is too large: {len(data):,} bytes (at most {max_bytes:,}; RAG_MAX_FILE_BYTES)", 413, "too_large")
    if not data.strip():
        raise AddRefused(f"'{name}' is empty", 422, "empty_file")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    check_not_duplicate(data_dir, name, data)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{STAGED_PREFIX}{os.getpid()}-", suffix=Path(name).suffix, dir=data_dir)
    os.fchmod(fd, file_mode())  # as any other file of the folder (mkstemp makes it 0600)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            doc = load_file(tmp, name, max_bytes, limits)  # the same loader the index uses: refuse what it would skip
        except SkipTooLarge as e:
            raise AddRefused(f"'{name}' cannot be used as an article: {e}", 413) from None
        except SkipFile as e:
            raise AddRefused(f"'{name}' cannot be used as an article: {e}", 422, skip_code(str(e))) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Staged(tmp, data_dir, Added(source=source or name, path=name, doc_id=doc.doc_id, title=doc.title))


def store_bytes(data_dir: Path, name: str, data: bytes, max_bytes: int, source: str | None = None,
                limits: "ParseLimits | None" = None) -> Added:
    """``stage_bytes``, then the file into the data folder at once (the caller indexes it afterwards)."""
    return _at_once(stage_bytes(data_dir, name, data, max_bytes, source, limits))


def stage_file(data_dir: Path, path: Path, max_bytes: int, limits: "ParseLimits | None" = None) -> Staged:
    from rag.ingest.documents import display_path

    path = Path(path)
    if path.is_symlink():  # as in the data folder (symlinks are not followed): a link could add any file
        raise AddRefused(f"'{display_path(path)}' is a symbolic link; add the file it points to instead", 422, "symlink")
    if not path.is_file():
        raise AddRefused(f"'{display_path(path)}' is not a file")
    safe_name(path.name)
    check_type(path.name)
    try:
        if path.resolve().is_relative_to(Path(data_dir).resolve()):
            raise AddRefused(f"'{path}' is already inside the data folder; run `rag index` instead", 409)
        if path.stat().st_size > max_bytes:
            raise AddRefused(f"'{path.name}' is too large: {path.stat().st_size:,} bytes (at most {max_bytes:,})", 413)
        data = path.read_bytes()
    except OSError as e:
        raise AddRefused(f"cannot read '{path}': {e.strerror or e}") from None
    return stage_bytes(data_dir, path.name, data, max_bytes, source=str(path), limits=limits)


def add_file(data_dir: Path, path: Path, max_bytes: int, limits: "ParseLimits | None" = None) -> Added:
    """``stage_file``, then the file into the data folder at once (the caller indexes it)."""
    return _at_once(stage_file(data_dir, path, max_bytes, limits))


def _at_once(staged: Staged) -> Added:
    try:
        staged.commit()
    finally:
        staged.discard()
    return staged.added


# ============================================================================ web pages

def slug(text: str, limit: int = 80) -> str:
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return (s[:limit].rstrip("-") or "artikel")


def _front_value(v: str) -> str:
    return " ".join(str(v).split()).replace("---", "—")


def page_markdown(title: str, text: str, meta: dict) -> str:
    lines = ["---", f"title: {_front_value(title)}"]
    meta = {**meta, "date": meta.get("date") or meta.get("file_date")}  # the page's own date (rag.ingest.formats)
    for key in ("date", "author", "url"):
        if meta.get(key):
            lines.append(f"{key}: {_front_value(meta[key])}")
    lines.append("---")
    return "\n".join(lines) + "\n\n" + text.strip() + "\n"


def stage_url(data_dir: Path, url: str, max_bytes: int, timeout: float = FETCH_TIMEOUT,
              limits: "ParseLimits | None" = None) -> Staged:
    """The web page at ``url`` as a staged Markdown article; fetching and reading it end at ``timeout``."""
    from rag.ingest.fetch import Deadline, FetchError, fetch_page, late
    from rag.ingest.limits import ParseLimits, SkipFile, SkipTooLarge
    from rag.ingest.safe_parse import extract

    with Deadline(timeout) as deadline:
        try:
            raw, final_url = fetch_page(url, max_bytes, timeout, deadline)
        except FetchError as e:
            raise AddRefused(str(e), e.status) from None
        left = deadline.left()
        if left <= 0:
            raise AddRefused(str(late(url, timeout)), 504)
        limits = limits or ParseLimits()
        try:  # in the limited child process, like a file; within what is left of the deadline
            title, text, meta = extract("html", raw, replace(limits, timeout=min(limits.timeout, left)))
        except SkipTooLarge as e:
            raise AddRefused(f"{url}: {e}", 413) from None
        except SkipFile as e:
            if left < limits.timeout and "RAG_PARSE_TIMEOUT" in str(e):  # the deadline's share ran out
                raise AddRefused(str(late(url, timeout)), 504) from None
            raise AddRefused(f"{url}: {e}", 422) from None
    meta = {**meta, "url": meta.get("url") or final_url}
    title = title or urlparse(final_url).path.rstrip("/").rsplit("/", 1)[-1] or "artikel"
    markdown = page_markdown(title, text, meta)
    return stage_bytes(data_dir, slug(title) + ".md", markdown.encode("utf-8"), max_bytes, source=url, limits=limits)


def add_url(data_dir: Path, url: str, max_bytes: int, timeout: float = FETCH_TIMEOUT,
            limits: "ParseLimits | None" = None) -> Added:
    """``stage_url``, then the file into the data folder at once (the caller indexes it)."""
    return _at_once(stage_url(data_dir, url, max_bytes, timeout, limits))


def stage_source(data_dir: Path, source: str, max_bytes: int, timeout: float = FETCH_TIMEOUT,
                 limits: "ParseLimits | None" = None) -> Staged:
    """A file or web page (``rag add``), checked and staged in the data folder (see ``Staged``)."""
    if is_url(source):
        return stage_url(data_dir, source, max_bytes, timeout, limits)
    return stage_file(data_dir, Path(source), max_bytes, limits)
