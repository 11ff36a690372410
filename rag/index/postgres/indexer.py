"""Building the shared store: the articles of a folder into PostgreSQL, incrementally, in one transaction.

* Incremental by file hash, like the local build: only new or changed files are chunked and
  embedded, removed files are deleted, unchanged ones keep their rows (and chunk ids).
* One transaction per build: readers keep seeing the previous index until the commit, and an
  indexer killed half-way (even ``kill -9``) leaves it as it was (PostgreSQL rolls back).
* Two indexers are serialised by a transaction-level advisory lock: the second waits and says so
  (``wait=True``, the default) or refuses with ``IndexBusy``.
* Every build that writes bumps ``rag_meta.index_version``; stores in other processes reload their
  manifest when they see the new version.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from rag.ingest.chunking import chunk_document
from rag.index.postgres.db import BUILD_LOCK, Database, ensure_embedding_column, ts_config_for
from rag.ingest.documents import load_documents
from rag.ingest.failures import ParseFailures
from rag.ingest.pubdate import document_dating
from rag.errors import ConfigError, IndexBusy
from rag.ingest.limits import SkipFile
from rag.index.postgres.store import BM25_B, BM25_K1, FORMAT, fold, vector_text

try:  # h10 moves the build into rag/index/local/indexer.py
    from rag.index.local.indexer import BuildReport, IndexParams, check_staged
except ImportError:  # pragma: no cover
    from rag.index.local.store import BuildReport, IndexParams

log = logging.getLogger(__name__)

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
INSERT_BATCH = 500


def backend_of(embedder) -> str:
    return getattr(embedder, "backend", None) or "torch"


def reusable(manifest: dict | None, embedder, params: IndexParams, ts_config: str) -> tuple[bool, str | None]:
    """Can the stored chunks and vectors be kept for unchanged files?"""
    if manifest is None:
        return False, None
    if manifest.get("format") != FORMAT:
        return False, f"stored format {manifest.get('format')!r} -> {FORMAT!r}"
    e = manifest["embedding"]
    have = (e["model_id"], int(e["dimension"]), e.get("backend", "torch"), e.get("passage_prefix", ""))
    now = (embedder.model_id, embedder.dimension, backend_of(embedder), getattr(embedder, "passage_prefix", ""))
    if have != now:
        return False, f"embedding model changed ({have[:3]} -> {now[:3]})"
    want = {"target_tokens": params.target_tokens, "overlap_tokens": params.overlap_tokens, "max_tokens": embedder.max_tokens}
    got = {k: manifest["chunking"].get(k) for k in want}
    if got != want:
        return False, f"chunking settings changed ({got} -> {want})"
    if manifest["fulltext"]["config"] != ts_config:
        return False, f"text-search configuration changed ({manifest['fulltext']['config']} -> {ts_config})"
    return True, None


def _redate(conn, docs) -> int:
    """Articles already in the database, read the same but dated differently now (newer date rules:
    ``rag.ingest.pubdate``), or with other metadata: their rows updated. Returns how many rows changed."""
    from psycopg.types.json import Jsonb

    changed = 0
    with conn.cursor() as cur:
        for doc in docs:
            d = document_dating(doc)
            cur.execute("UPDATE rag_chunks SET pub_date = %s, date_source = %s WHERE doc_id = %s "
                        "AND (pub_date IS DISTINCT FROM %s OR date_source IS DISTINCT FROM %s)",
                        (d.date, d.source, doc.doc_id, d.date, d.source))
            changed += max(cur.rowcount, 0)
            cur.execute("UPDATE rag_documents SET metadata = %s WHERE doc_id = %s AND metadata IS DISTINCT FROM %s",
                        (Jsonb(doc.metadata), doc.doc_id, Jsonb(doc.metadata)))
            changed += max(cur.rowcount, 0)
    return changed


def build_postgres(db: Database, data_dir: Path, embedder, params: IndexParams, *, rebuild: bool = False,
                   wait: bool = True, show_progress: bool = False,
                   on_stage: Callable[[str], None] | None = None, retry_failed: bool = False,
                   extra: dict[str, Path] | None = None, publish: Callable[[], None] | None = None) -> BuildReport:
    """Build or update the index in the database from the articles in ``data_dir``. Files that failed
    to parse before are skipped unread until they change (``rag.ingest.failures``; ``retry_failed``
    reads them again). ``extra`` / ``publish`` as for the local build (``rag add``): staged files are
    indexed under their names and ``publish()`` puts them into the data folder just before the
    commit (a kill between the two leaves the article in the folder, indexed by the next build)."""
    from psycopg.types.json import Jsonb

    t0 = time.perf_counter()
    stage = on_stage or (lambda msg: log.info(msg))
    report = BuildReport(model_id=embedder.model_id, fallback_reason=embedder.fallback_reason)
    report.waited_seconds = 0.0
    cfg = ts_config_for(params.bm25_language)
    if not Path(data_dir).is_dir():
        raise ConfigError(f"the data folder '{data_dir}' does not exist (set --data or RAG_DATA_DIR); "
                          "the index was left as it was")
    db.migrate()

    with db.transaction() as conn:
        conn.execute("SET LOCAL statement_timeout = 0")  # waiting for another build and big writes take long
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (BUILD_LOCK,)).fetchone()[0]:
            if not wait:
                raise IndexBusy("another indexer is writing to this database right now; try again when it has "
                                "finished (the index was left as it was)")
            stage("Another indexer is writing to this database: waiting for it to finish")
            t_wait = time.perf_counter()
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (BUILD_LOCK,))
            report.waited_seconds = round(time.perf_counter() - t_wait, 3)
            stage(f"Waited {report.waited_seconds:.1f} s for the other indexer")
        if conn.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = %s", (cfg,)).fetchone() is None:
            raise ConfigError(f"PostgreSQL has no text-search configuration '{cfg}' (RAG_BM25_LANGUAGE)")
        row = conn.execute("SELECT manifest FROM rag_meta WHERE id = 1 FOR UPDATE").fetchone()
        old_manifest = row[0] if row else None
        reuse, why = reusable(old_manifest, embedder, params, cfg)
        if old_manifest is not None and not reuse:
            report.rebuilt_reason = why
        if rebuild:
            report.rebuilt_reason = "--rebuild asked for"
        recreated = ensure_embedding_column(conn, embedder.dimension, m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        if rebuild or not reuse or recreated:
            conn.execute("DELETE FROM rag_documents")  # chunks go with them (ON DELETE CASCADE)

        stage(f"Loading articles from {data_dir}")
        failures = ParseFailures.from_manifest(old_manifest, params.parse_limits, retry=retry_failed)
        loaded = load_documents(Path(data_dir), params.max_file_bytes, params.parse_limits, failures=failures,
                                extra=extra)
        report.skipped = loaded.skipped
        check_staged(loaded, extra)
        if not loaded.documents:
            why_not = "; ".join(f"{s.path}: {s.reason}" for s in loaded.skipped[:5])
            raise ConfigError(f"no usable articles in '{data_dir}'" + (f" ({why_not})" if why_not else "")
                              + "; the index was left as it was")

        stored = {p: (d, h) for p, d, h in conn.execute("SELECT path, doc_id, sha256 FROM rag_documents")}
        new_paths = {d.path for d in loaded.documents}
        report.removed = sorted(p for p in stored if p not in new_paths)
        todo = []
        for doc in loaded.documents:
            prev = stored.get(doc.path)
            if prev is not None and prev[1] == doc.sha256:
                report.unchanged += 1
                continue
            (report.changed if prev else report.added).append(doc.path)
            todo.append(doc)
        skipped_now = [s.__dict__ for s in loaded.skipped]
        todo_paths = {d.path for d in todo}
        unchanged = [d for d in loaded.documents if d.path not in todo_paths]
        redated = _redate(conn, unchanged) if reuse and not rebuild and not recreated else 0
        if reuse and not rebuild and not todo and not report.removed and not redated \
                and old_manifest.get("skipped", []) == skipped_now and old_manifest.get("failed", {}) == failures.to_manifest():
            report.documents = len(loaded.documents)
            report.chunks = old_manifest["counts"]["chunks"]
            report.seconds = time.perf_counter() - t0
            stage("Index is up to date")
            return report

        gone = report.removed + [d.path for d in todo if d.path in stored]
        if gone:
            conn.execute("DELETE FROM rag_documents WHERE path = ANY(%s)", (gone,))
        chunks = []
        for doc in list(todo):
            try:  # within the passage budget of its file (issue 37)
                chunks += chunk_document(doc, embedder.count_tokens, embedder.max_tokens, params.target_tokens,
                                         params.overlap_tokens, params.parse_limits, loaded.sizes.get(doc.path))
            except SkipFile as e:
                todo.remove(doc)
                loaded.skip(doc, str(e))
                (report.changed if doc.path in stored else report.added).remove(doc.path)
        skipped_now = [s.__dict__ for s in loaded.skipped]
        if chunks:
            stage(f"Embedding {len(chunks)} chunks with {embedder.model_id}")
        vectors = embedder.embed_passages([c.text for c in chunks], show_progress=show_progress)
        report.embedded_chunks = len(chunks)

        stage("Writing the index")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO rag_documents (doc_id, path, title, text, metadata, sha256) VALUES (%s, %s, %s, %s, %s, %s)",
                [(d.doc_id, d.path, d.title, d.text, Jsonb(d.metadata), d.sha256) for d in todo])
            for lo in range(0, len(chunks), INSERT_BATCH):
                cur.executemany(
                    "INSERT INTO rag_chunks (chunk_id, doc_id, ordinal, title, text, start_offset, end_offset, pub_date, "
                    "date_source, tsv, embedding) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, to_tsvector(%s::regconfig, %s), %s::vector)",
                    [(c.chunk_id, c.doc_id, c.ordinal, c.title, c.text, c.start, c.end, c.date, c.date_source, cfg,
                      fold(c.text),
                      vector_text(v))
                     for c, v in zip(chunks[lo:lo + INSERT_BATCH], vectors[lo:lo + INSERT_BATCH])])
        stage("Updating the term statistics")
        conn.execute("UPDATE rag_chunks SET tlen = (SELECT coalesce(sum(array_length(u.positions, 1)), 0) "
                     "FROM unnest(tsv) u) WHERE tlen IS NULL")
        conn.execute("DELETE FROM rag_terms")
        conn.execute("INSERT INTO rag_terms (lexeme, df) SELECT word, ndoc FROM ts_stat('SELECT tsv FROM rag_chunks')")
        avgdl = conn.execute("SELECT coalesce(avg(tlen), 0) FROM rag_chunks").fetchone()[0]
        n_docs, n_chunks = conn.execute("SELECT (SELECT count(*) FROM rag_documents), (SELECT count(*) FROM rag_chunks)").fetchone()
        manifest = make_manifest(embedder, params, cfg, n_docs, n_chunks, skipped_now)
        manifest["failed"] = failures.to_manifest()  # parse failures by content hash
        manifest["fulltext"]["avg_tokens"] = float(avgdl)
        conn.execute("INSERT INTO rag_meta (id, manifest, index_version) VALUES (1, %s, 1) "
                     "ON CONFLICT (id) DO UPDATE SET manifest = EXCLUDED.manifest, "
                     "index_version = rag_meta.index_version + 1, updated_at = now()", (Jsonb(manifest),))
        if publish is not None:
            publish()  # the staged files into the data folder, then the commit
    report.documents, report.chunks, report.wrote = n_docs, n_chunks, True
    report.seconds = time.perf_counter() - t0
    return report


def make_manifest(embedder, params: IndexParams, cfg: str, n_docs: int, n_chunks: int, skipped: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "embedding": {
            "model_id": embedder.model_id, "requested_model": embedder.requested_model,
            "fallback_reason": embedder.fallback_reason, "dimension": embedder.dimension,
            "backend": backend_of(embedder),
            "query_prefix": getattr(embedder, "query_prefix", ""), "passage_prefix": getattr(embedder, "passage_prefix", ""),
        },
        "chunking": {"target_tokens": params.target_tokens, "overlap_tokens": params.overlap_tokens,
                     "max_tokens": embedder.max_tokens, "unit": "embedding-model tokens"},
        "bm25": {"language": params.bm25_language, "library": "postgres-fts"},
        "fulltext": {"config": cfg, "rank": "bm25", "k1": BM25_K1, "b": BM25_B},
        "pgvector": {"index": "hnsw", "metric": "cosine", "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
        "counts": {"documents": n_docs, "chunks": n_chunks, "skipped": len(skipped)},
        "skipped": skipped,
    }
