"""The shared store on PostgreSQL + pgvector: search, chunks and documents straight from the database.

Same search surface as the local ``IndexStore`` (``search_dense``, ``search_bm25``, ``get_chunks``,
``similarities``, ``chunk_indices``, ``documents``, ``manifest``), but nothing big is held in
memory: chunk ids are the table's ``id`` column, and chunks are fetched by id when needed.

Replicas: every process opens its own ``PostgresStore`` on the same database. Each checks the
``rag_meta.index_version`` row at most every ``refresh_seconds`` and reloads the manifest when a
build bumped it, so a re-index is seen without a restart.

Lexical half: PostgreSQL full-text search over ``to_tsvector(<config>, fold(text))`` (the config
follows ``RAG_BM25_LANGUAGE``; text is folded like the local BM25 analyzer: lower case, no
diacritics). Chunks matching any word of the query (GIN index) are ranked with BM25 computed in
SQL (term frequencies from the tsvector, chunk frequencies in ``rag_terms``); ``ts_rank_cd`` is
the alternative (``lexical="ts_rank_cd"``), measured worse on eval/qa.jsonl (docs/postgres.md).
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Iterator, Sequence

import numpy as np

from rag.index.postgres.db import Database
from rag.errors import EmbeddingModelMismatch, IndexCorrupt, IndexNotFound
from rag.schema import Chunk, Document
from rag.index.local.store import ManifestFacts

FORMAT = "postgres-1"
BM25_K1, BM25_B = 1.5, 0.75  # as bm25s
RANK_NORMALIZATION = 1  # for lexical="ts_rank_cd": divide by 1 + log(length)
# BM25 (Lucene idf, as bm25s) over the full-text index: candidates from the GIN index, term
# frequencies from the tsvector positions, chunk frequencies from rag_terms, lengths from tlen.
BM25_SQL = """
WITH q AS (SELECT websearch_to_tsquery(%(cfg)s::regconfig, %(words)s) AS tsq),
terms AS (
    SELECT t.lexeme, ln(1 + (%(n)s - t.df + 0.5) / (t.df + 0.5)) AS idf
    FROM rag_terms t
    WHERE t.lexeme = ANY(SELECT u.lexeme FROM unnest(to_tsvector(%(cfg)s::regconfig, %(text)s)) u)
)
SELECT c.id, sum(terms.idf * x.tf * (%(k1)s + 1)
                 / (x.tf + %(k1)s * (1 - %(b)s + %(b)s * c.tlen / %(avgdl)s))) AS score
FROM rag_chunks c, q,
     LATERAL (SELECT u.lexeme, array_length(u.positions, 1) AS tf FROM unnest(c.tsv) u) x
     JOIN terms ON terms.lexeme = x.lexeme
WHERE c.tsv @@ q.tsq
GROUP BY c.id
ORDER BY score DESC, c.id
LIMIT %(k)s
"""
_WORD = re.compile(r"\w+", re.UNICODE)
_CHUNK_COLS = "id, chunk_id, doc_id, title, text, start_offset, end_offset, ordinal, pub_date, date_source"


def fold(text: str) -> str:
    """Lower case without diacritics ("échte" -> "echte"), as the local BM25 analyzer folds."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def or_query(text: str) -> str:
    """A ``websearch_to_tsquery`` string matching any of the words (operators and quotes removed)."""
    words = [w for w in _WORD.findall(fold(text)) if w != "or"]
    return " or ".join(words)


def vector_text(vec) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vec, dtype=np.float32).ravel()) + "]"


def _chunk(row) -> Chunk:
    _id, chunk_id, doc_id, title, text, start, end, ordinal, pub_date, date_source = row
    return Chunk(chunk_id=chunk_id, doc_id=doc_id, title=title, text=text, start=start, end=end, ordinal=ordinal,
                 date=pub_date, date_source=date_source)


def check_manifest_model(manifest: dict, embedder, where: str) -> None:
    built = manifest["embedding"]
    backend = getattr(embedder, "backend", None) or "torch"
    if (built["model_id"], int(built["dimension"]), built.get("backend", "torch")) != (embedder.model_id, embedder.dimension, backend):
        raise EmbeddingModelMismatch(
            f"the index in {where} was built with embedding model '{built['model_id']}' "
            f"({built['dimension']} dimensions, backend {built.get('backend', 'torch')}), but the loaded model is "
            f"'{embedder.model_id}' ({embedder.dimension} dimensions, backend {backend}). Rebuild the index with `rag index --rebuild`, "
            f"or set RAG_EMBED_MODEL={built.get('requested_model') or built['model_id']} to use the model it was built with."
        )


class PostgresStore(ManifestFacts):
    """A view of the index in a PostgreSQL database (see the module doc). Thread-safe."""

    kind = "postgres"

    def __init__(self, db: Database, embedder=None, *, refresh_seconds: float = 2.0, ef_search: int = 100,
                 lexical: str = "bm25") -> None:
        self.db = db
        self.lexical = lexical  # "bm25" (SQL over the full-text index) or "ts_rank_cd"
        self.embedder = embedder
        self.refresh_seconds = refresh_seconds
        self.ef_search = ef_search
        self._lock = threading.Lock()
        self._version = -1
        self._manifest: dict = {}
        self._checked = 0.0
        self._analyzer = None
        self.refresh(force=True)

    @classmethod
    def open(cls, db: Database, embedder=None, **kw) -> "PostgresStore":
        return cls(db, embedder, **kw)

    # ---- the version row
    def refresh(self, force: bool = False) -> bool:
        """Re-read the manifest when a build bumped the version (checked at most every
        ``refresh_seconds``). Returns True when a new version was loaded."""
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_seconds:
            return False

        def read(conn):
            if conn.execute("SELECT to_regclass('rag_meta')").fetchone()[0] is None:
                return None
            return conn.execute("SELECT index_version, CASE WHEN index_version = %s THEN NULL ELSE manifest END "
                                "FROM rag_meta WHERE id = 1", (self._version,)).fetchone()

        row = self.db.run(read)
        if row is None:
            raise IndexNotFound(f"no index in the database {self.where}: build it with `rag index` (RAG_STORE=postgres)")
        version, manifest = row
        with self._lock:
            self._checked = now
            if version == self._version:
                return False
            if manifest.get("format") != FORMAT:
                raise IndexCorrupt(f"the index in {self.where} has format {manifest.get('format')!r}, this program "
                                   f"reads {FORMAT!r}: rebuild it with `rag index --rebuild`")
            if self.embedder is not None:
                check_manifest_model(manifest, self.embedder, self.where)
            self._version, self._manifest = version, manifest
            return True

    @property
    def where(self) -> str:
        from rag.index.postgres.db import redact

        return f"'{redact(self.db.url)}'"

    @property
    def index_version(self) -> int:
        self.refresh()
        return self._version

    @property
    def manifest(self) -> dict:
        self.refresh()
        return self._manifest

    @property
    def path(self) -> PurePosixPath:  # the API shows path.name as the index version
        return PurePosixPath(f"postgres/v{self.index_version}")

    @property
    def ts_config(self) -> str:
        return self.manifest["fulltext"]["config"]

    @property
    def analyzer(self):
        """The local BM25 analyzer for the same language (used by the citation checker)."""
        if self._analyzer is None:
            try:
                from rag.text import BM25Analyzer
            except ImportError:
                from rag.index.local.store import BM25Analyzer
            self._analyzer = BM25Analyzer(self.manifest["bm25"]["language"])
        return self._analyzer

    # ---- chunks and documents
    @property
    def chunks(self) -> "ChunkView":
        return ChunkView(self)

    @property
    def documents(self) -> "DocumentView":
        return DocumentView(self)

    def chunk_count(self) -> int:
        return self.db.run(lambda c: c.execute("SELECT count(*) FROM rag_chunks").fetchone()[0])

    def get_chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these ids (ids a concurrent build removed are missing from the result)."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.db.run(lambda c: c.execute(f"SELECT {_CHUNK_COLS} FROM rag_chunks WHERE id = ANY(%s)", (ids,)).fetchall())
        return {r[0]: _chunk(r) for r in rows}

    def chunk_indices(self, doc_id: str) -> list[int]:
        rows = self.db.run(lambda c: c.execute("SELECT id FROM rag_chunks WHERE doc_id = %s ORDER BY ordinal",
                                               (doc_id,)).fetchall())
        return [r[0] for r in rows]

    def similarities(self, query_vec: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Exact cosine similarity of the query to these chunks."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.db.run(lambda c: c.execute(
            "SELECT id, 1 - (embedding <=> %s::vector) FROM rag_chunks WHERE id = ANY(%s)",
            (vector_text(query_vec), ids)).fetchall())
        return {r[0]: float(r[1]) for r in rows}

    # ---- search
    def search_dense(self, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k <= 0:
            return []
        self.refresh()
        q = vector_text(query_vec)

        def go(conn):
            with conn.transaction():  # SET LOCAL lasts for this query only
                conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(self.ef_search), int(k))}")
                return conn.execute("SELECT id, 1 - (embedding <=> %s::vector) AS sim FROM rag_chunks "
                                    "ORDER BY embedding <=> %s::vector LIMIT %s", (q, q, int(k))).fetchall()

        return [(r[0], float(r[1])) for r in self.db.run(go)]

    def search_bm25(self, query: str, k: int) -> list[tuple[int, float]]:
        """Full-text search: chunks matching any word of ``query``, ranked by BM25 (``lexical="bm25"``,
        the default) or ``ts_rank_cd``."""
        if k <= 0:
            return []
        self.refresh()
        words = or_query(query)
        if not words:
            return []
        cfg = self.ts_config
        if self.lexical == "bm25":
            ft = self.manifest["fulltext"]
            params = {"cfg": cfg, "words": words, "text": fold(query), "n": self.manifest["counts"]["chunks"],
                      "k1": BM25_K1, "b": BM25_B, "avgdl": max(float(ft.get("avg_tokens") or 1.0), 1e-6), "k": int(k)}
            rows = self.db.run(lambda c: c.execute(BM25_SQL, params).fetchall())
            return [(r[0], float(r[1])) for r in rows if r[1] > 0]
        rows = self.db.run(lambda c: c.execute(
            "SELECT id, ts_rank_cd(tsv, q, %s) AS r FROM rag_chunks, websearch_to_tsquery(%s::regconfig, %s) q "
            "WHERE tsv @@ q ORDER BY r DESC, id LIMIT %s", (RANK_NORMALIZATION, cfg, words, int(k))).fetchall())
        return [(r[0], float(r[1])) for r in rows if r[1] > 0]


class ChunkView(Sequence):
    """``store.chunks`` for code written against the local store: ``len``, ``[id]`` and iteration
    (streamed with a server-side cursor; avoid on large tables)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return self._store.chunk_count()

    def __getitem__(self, i):
        if isinstance(i, slice):
            raise TypeError("slicing the chunks of a database store is not supported")
        got = self._store.get_chunks([i])
        if int(i) not in got:
            raise IndexError(f"no chunk with id {i}")
        return got[int(i)]

    def __iter__(self) -> Iterator[Chunk]:
        def rows(conn):
            with conn.transaction(), conn.cursor(name="rag_chunks_iter") as cur:
                cur.execute(f"SELECT {_CHUNK_COLS} FROM rag_chunks ORDER BY id")
                return [_chunk(r) for r in cur]
        return iter(self._store.db.run(rows))


class DocumentView(Mapping):
    """``store.documents``: a read-only mapping doc_id -> Document, read from the database."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def _rows(self, where: str = "", params: tuple = ()):
        return self._store.db.run(lambda c: c.execute(
            f"SELECT doc_id, path, title, text, metadata, sha256 FROM rag_documents {where} ORDER BY path", params).fetchall())

    def __getitem__(self, doc_id: str) -> Document:
        rows = self._rows("WHERE doc_id = %s", (doc_id,))
        if not rows:
            raise KeyError(doc_id)
        return Document(*rows[0])

    def __iter__(self) -> Iterator[str]:
        return iter(r[0] for r in self._store.db.run(lambda c: c.execute("SELECT doc_id FROM rag_documents ORDER BY path").fetchall()))

    def __len__(self) -> int:
        return self._store.db.run(lambda c: c.execute("SELECT count(*) FROM rag_documents").fetchone()[0])

    def values(self):  # one query instead of one per document
        return [Document(*r) for r in self._rows()]

    def items(self):
        return [(d.doc_id, d) for d in self.values()]
