"""Building the index: the run that loads, chunks and embeds the articles and writes a new version.

A build writes a new version folder completely, then swaps ``CURRENT`` with ``os.replace``. A build
that dies half-way leaves the previous index loadable; its unfinished folder is removed by the next
build. Builds of one index folder are serialised by a file lock (``.lock``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rag.ingest.chunking import chunk_document
from rag.ingest.documents import LoadResult, Skipped, load_documents
from rag.ingest.failures import ParseFailures
from rag.embed.base import Embedder
from rag.errors import BuildCancelled, ConfigError, IndexBusy
from rag.ingest.pubdate import document_dating
from rag.ingest.limits import ParseLimits, SkipFile
from rag.schema import Chunk, Document
from rag.index.local.store import (FORMAT_VERSION, IndexStore, active_version, embedder_backend, load_manifest,
                                   model_difference)
from rag.index.local.versions import (clean_stale_versions, new_version_name, publish_version, requirements, revert,
                                      settle, write_file)
from rag.text import BM25Analyzer, bm25s_module

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexParams:
    """Everything that changes what a build produces (recorded in the manifest)."""

    target_tokens: int = 250
    overlap_tokens: int = 48
    bm25_language: str = "dutch"
    hnsw_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    max_file_bytes: int = 5_000_000
    parse_limits: ParseLimits = field(default_factory=ParseLimits)  # not recorded: they decide what is skipped

    @classmethod
    def from_settings(cls, s) -> "IndexParams":
        return cls(
            target_tokens=s.chunk_tokens, overlap_tokens=s.chunk_overlap_tokens, bm25_language=s.bm25_language,
            hnsw_threshold=s.hnsw_threshold, hnsw_m=s.hnsw_m, hnsw_ef_search=s.hnsw_ef_search,
            max_file_bytes=s.max_file_bytes, parse_limits=ParseLimits.from_settings(s),
        )


@dataclass
class BuildReport:
    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded_chunks: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    model_id: str = ""
    fallback_reason: str | None = None
    source: str | None = None  # where the embedding model came from (Embedder.source)
    seconds: float = 0.0
    wrote: bool = False  # False when the index was already up to date
    rebuilt_reason: str | None = None  # why everything was re-embedded

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["skipped"] = [s.__dict__ for s in self.skipped]
        return d


LOCK_POLL_S = 0.2
EMBED_SLICE = 16  # a cancellable build embeds this many chunks between checks of its cancel flag


@contextmanager
def _build_lock(index_dir: Path, timeout: float | None = None, stage: Callable[[str], None] | None = None):
    """The index folder's build lock (``.lock``, holding the holder's pid). A build that finds it taken
    says so (``stage``) and waits at most ``timeout`` seconds (None: for ever), then ``IndexBusy``."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            waited = f"at most {timeout:g} s" if timeout is not None else "until it has finished"
            (stage or log.info)(f"Waiting for the index lock in {index_dir}: another process (pid {holder}) is "
                                f"writing this index; waiting {waited}")
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise IndexBusy(f"another process (pid {holder}) has been writing the index in '{index_dir}' "
                                        f"for more than {timeout:g} s; the index was left as it was: try again when "
                                        f"it has finished (RAG_LOCK_TIMEOUT sets how long to wait)") from None
                    time.sleep(LOCK_POLL_S)
        try:
            fh.truncate(0)
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_faiss_index(vectors: np.ndarray, dimension: int, params: IndexParams):
    import faiss

    if len(vectors) > params.hnsw_threshold:
        index = faiss.IndexHNSWFlat(dimension, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = params.hnsw_ef_search
        kind = "hnsw"
    else:
        index = faiss.IndexFlatIP(dimension)
        kind = "flat"
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def _reusable(old: IndexStore | None, embedder: Embedder, params: IndexParams) -> tuple[bool, str | None]:
    """Can the old index's chunks and vectors be kept for unchanged files?"""
    if old is None:
        return False, None
    m = old.manifest
    changed = model_difference(m, embedder)
    if changed:
        return False, f"embedding model changed ({changed})"
    want = {"target_tokens": params.target_tokens, "overlap_tokens": params.overlap_tokens, "max_tokens": embedder.max_tokens}
    have = {k: m["chunking"].get(k) for k in want}
    if have != want:
        return False, f"chunking settings changed ({have} -> {want})"
    if m["embedding"].get("passage_prefix", "") != getattr(embedder, "passage_prefix", ""):
        return False, "passage prefix changed"
    return True, None


def build_index(
    data_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    params: IndexParams,
    *,
    rebuild: bool = False,
    show_progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
    lock_timeout: float | None = None,
    cancel: Callable[[], bool] | None = None,
    retry_failed: bool = False,
    extra: dict[str, Path] | None = None,
    publish: Callable[[], None] | None = None,
) -> BuildReport:
    """Build or update the index in ``index_dir`` from the articles in ``data_dir``.

    Only new or changed files are chunked and embedded; deleted ones are dropped. The new
    index is written beside the old one and swapped in atomically. ``lock_timeout``: how long to
    wait for another build of the same folder (``IndexBusy`` after). ``cancel()`` is asked between
    embedding batches; when it says True the build stops with ``BuildCancelled``, nothing written.
    Files that failed to parse before are skipped unread until they change (``rag.ingest.failures``);
    ``retry_failed`` reads them again.

    ``rag add`` (all or nothing): ``extra`` are staged files indexed under their names in the data
    folder (relative name -> staged path); the new version stands only once they are there, and
    ``publish()`` -- still under the lock -- puts them there (``rag.index.local.versions``).
    """
    t0 = time.perf_counter()
    stage = on_stage or (lambda msg: log.info(msg))
    index_dir = Path(index_dir)
    report = BuildReport(model_id=embedder.model_id, fallback_reason=embedder.fallback_reason,
                         source=getattr(embedder, "source", None))

    with _build_lock(index_dir, lock_timeout, stage):
        clean_stale_versions(index_dir)
        old = None
        if not rebuild and active_version(index_dir) is not None:
            try:
                old = IndexStore.load(index_dir, embedder=None, mmap=False)
            except Exception as e:  # unreadable old index: build from scratch
                report.rebuilt_reason = f"previous index unreadable ({e})"
        reuse, why = _reusable(old, embedder, params)
        if old is not None and not reuse:
            report.rebuilt_reason = why
        if rebuild:
            report.rebuilt_reason = "--rebuild asked for"

        stage(f"Loading articles from {data_dir}")
        if not Path(data_dir).is_dir():
            raise ConfigError(f"the data folder '{data_dir}' does not exist (set --data or RAG_DATA_DIR); "
                              "the index was left as it was")
        failures = ParseFailures.from_manifest(old.manifest if old is not None else _manifest_or_none(index_dir),
                                               params.parse_limits, retry=retry_failed)
        loaded: LoadResult = load_documents(data_dir, params.max_file_bytes, params.parse_limits, failures=failures,
                                            extra=extra)
        report.skipped = loaded.skipped
        check_staged(loaded, extra)
        if not loaded.documents:
            why = "; ".join(f"{s.path}: {s.reason}" for s in loaded.skipped[:5])
            raise ConfigError(f"no usable articles in '{data_dir}'" + (f" ({why})" if why else "")
                              + "; the index was left as it was")

        old_files: dict[str, dict] = old.manifest["files"] if (old is not None and reuse) else {}
        old_docs_by_path = {d.path: d for d in old.documents.values()} if (old is not None and reuse) else {}

        chunks: list[Chunk] = []
        vectors_parts: list[np.ndarray] = []
        to_embed: list[Chunk] = []
        files: dict[str, dict] = {}
        documents: list[Document] = []
        new_paths = set()
        redated = False  # an unchanged file read differently than the index holds it (its date, its source, metadata)
        for doc in loaded.documents:
            new_paths.add(doc.path)
            documents.append(doc)
            prev = old_files.get(doc.path)
            old_doc = old_docs_by_path.get(doc.path)
            if prev and old_doc is not None and prev["sha256"] == doc.sha256:
                idx = old.chunk_indices(old_doc.doc_id)
                dated = document_dating(doc)  # same text, but the date rules may be newer than the index
                reused = [replace(old.chunks[i], date=dated.date, date_source=dated.source) for i in idx]
                redated = redated or old_doc.metadata != doc.metadata or any(c != old.chunks[i] for c, i in zip(reused, idx))
                chunks.extend(reused)
                vectors_parts.append(np.asarray(old.vectors[idx], dtype=np.float32) if idx else np.zeros((0, embedder.dimension), np.float32))
                report.unchanged += 1
                files[doc.path] = {"sha256": doc.sha256, "doc_id": doc.doc_id, "chunks": len(idx)}
                continue
            try:  # within the passage budget of its file (issue 37)
                doc_chunks = chunk_document(doc, embedder.count_tokens, embedder.max_tokens, params.target_tokens,
                                            params.overlap_tokens, params.parse_limits, loaded.sizes.get(doc.path))
            except SkipFile as e:
                new_paths.discard(doc.path)
                documents.pop()
                loaded.skip(doc, str(e))
                continue
            (report.changed if prev else report.added).append(doc.path)
            chunks.extend(doc_chunks)
            to_embed.extend(doc_chunks)
            vectors_parts.append(None)  # placeholder, filled after embedding
            files[doc.path] = {"sha256": doc.sha256, "doc_id": doc.doc_id, "chunks": len(doc_chunks)}
        report.removed = sorted(p for p in old_files if p not in new_paths)
        if not documents:
            raise ConfigError(f"no usable articles in '{data_dir}' ({loaded.skipped[-1].path}: {loaded.skipped[-1].reason})"
                              "; the index was left as it was")

        if old is not None and reuse and not rebuild and not report.added and not report.changed and not report.removed \
                and not redated and old.manifest.get("skipped", []) == [s.__dict__ for s in loaded.skipped] \
                and old.manifest.get("failed", {}) == failures.to_manifest():
            report.documents, report.chunks = len(documents), len(chunks)
            report.seconds = time.perf_counter() - t0
            stage("Index is up to date")
            return report

        if to_embed:
            stage(f"Embedding {len(to_embed)} chunks with {embedder.model_id}")
        new_vecs = _embed(embedder, [c.text for c in to_embed], show_progress, cancel)
        report.embedded_chunks = len(to_embed)
        # put the new vectors into the placeholders, in document order
        pos = 0
        filled: list[np.ndarray] = []
        for doc, part in zip(documents, vectors_parts):
            if part is None:
                n = files[doc.path]["chunks"]
                filled.append(new_vecs[pos:pos + n])
                pos += n
            else:
                filled.append(part)
        vectors = np.concatenate(filled) if filled else np.zeros((0, embedder.dimension), np.float32)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)

        stage("Writing the index")
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "embedding": {
                "model_id": embedder.model_id,
                "backend": embedder_backend(embedder),
                "source": getattr(embedder, "source", None),
                "requested_model": embedder.requested_model,
                "fallback_reason": embedder.fallback_reason,
                "dimension": embedder.dimension,
                "query_prefix": getattr(embedder, "query_prefix", ""),
                "passage_prefix": getattr(embedder, "passage_prefix", ""),
            },
            "chunking": {"target_tokens": params.target_tokens, "overlap_tokens": params.overlap_tokens,
                         "max_tokens": embedder.max_tokens, "unit": "embedding-model tokens"},
            "bm25": {"language": params.bm25_language, "library": "bm25s"},
            "faiss": {},
            "files": files,
            "counts": {"documents": len(documents), "chunks": len(chunks), "skipped": len(loaded.skipped)},
            "skipped": [s.__dict__ for s in loaded.skipped],
            "failed": failures.to_manifest(),  # parse failures by content hash (rag.ingest.failures)
        }
        version = _write_version(index_dir, manifest, chunks, documents, vectors, params, embedder.dimension,
                                 requirements(data_dir, extra) if extra else None)
        if publish is not None:
            try:
                publish()  # the staged files into the data folder: the commit
            except BaseException:
                revert(index_dir, version)
                raise
            settle(version)
        report.documents, report.chunks, report.wrote = len(documents), len(chunks), True
        report.seconds = time.perf_counter() - t0
        return report


def check_staged(loaded: LoadResult, extra: dict[str, Path] | None) -> None:
    """Every staged file (``rag add``) must become an article, or nothing is written."""
    paths = {d.path for d in loaded.documents}
    for rel in extra or {}:
        if rel not in paths:
            why = next((s.reason for s in loaded.skipped if s.path == rel), "skipped")
            raise ConfigError(f"'{rel}' could not be indexed ({why}); nothing was added and the index was left as it was")


def _manifest_or_none(index_dir: Path) -> dict | None:
    """The active version's manifest when it can be read (for what it remembers), else None."""
    try:
        return load_manifest(index_dir)
    except Exception:  # no index, or one this program cannot read: nothing remembered
        return None


def _embed(embedder: Embedder, texts: list[str], show_progress: bool, cancel: Callable[[], bool] | None) -> np.ndarray:
    """The passages' vectors; with ``cancel``, in slices with a check of it before each."""
    if cancel is None:
        return embedder.embed_passages(texts, show_progress=show_progress)
    parts = []
    for start in range(0, len(texts), EMBED_SLICE):
        if cancel():
            raise BuildCancelled("the index update was stopped (the server is shutting down); the index was left as it was")
        parts.append(np.asarray(embedder.embed_passages(texts[start:start + EMBED_SLICE]), dtype=np.float32))
    if cancel():
        raise BuildCancelled("the index update was stopped (the server is shutting down); the index was left as it was")
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), np.float32)


def _write_version(index_dir: Path, manifest: dict, chunks: list[Chunk], documents: list[Document],
                   vectors: np.ndarray, params: IndexParams, dimension: int, requires: list[dict] | None = None) -> Path:
    import faiss

    bm25s = bm25s_module()
    name = new_version_name()
    staging = index_dir / f".staging-{name}"
    staging.mkdir(parents=True)
    try:
        faiss_index, kind = make_faiss_index(vectors, dimension, params)
        manifest["faiss"] = {"type": kind, "metric": "inner_product", "m": params.hnsw_m if kind == "hnsw" else None,
                             "ef_search": params.hnsw_ef_search}
        faiss.write_index(faiss_index, str(staging / "faiss.index"))
        with open(staging / "vectors.npy", "wb") as fh:
            np.save(fh, vectors)
            fh.flush()
            os.fsync(fh.fileno())
        if chunks:
            analyzer = BM25Analyzer(params.bm25_language)
            bm25 = bm25s.BM25()
            bm25.index(analyzer.tokenize([c.text for c in chunks], return_ids=True), show_progress=False)
            bm25.save(str(staging / "bm25"), show_progress=False)
        write_file(staging / "chunks.jsonl", "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in chunks))
        write_file(staging / "documents.json", json.dumps([d.__dict__ for d in documents], ensure_ascii=False))
        write_file(staging / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        return publish_version(index_dir, staging, name, requires)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
