"""PostgreSQL access for the shared store: connections, migrations, locks, error translation.

* ``Database``: a small connection pool that never hangs on a dead server (``connect_timeout``)
  and reconnects by itself: a broken connection is dropped, the next call opens a fresh one, and a
  call that failed on a reused connection is retried once on a fresh one. Every failure to reach
  the server becomes ``StoreUnavailable`` (HTTP 503 in the API, a one-line message in the CLI).
* Migrations: ``rag/index/postgres/migrations/NNN_name.sql``, applied in order under an advisory lock, each in
  its own transaction, and recorded in ``rag_schema_version``.
* ``ensure_embedding_column``: the ``vector(dim)`` column and its HNSW index (cosine), created at
  the first build, re-created when the model's dimension changes.
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from rag.errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATE_LOCK = 0x7261_6701  # pg advisory-lock keys ("rag" + n)
BUILD_LOCK = 0x7261_6702

# PyStemmer / bm25s language names -> PostgreSQL text-search configurations
_TS_CONFIGS = {"none": "simple", "": "simple", "nl": "dutch", "en": "english", "de": "german", "fr": "french"}

T = TypeVar("T")


def _psycopg():
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - the extra is not installed
        raise ConfigError("RAG_STORE=postgres needs the 'postgres' extra: pip install 'nk-rag[postgres]'") from e
    return psycopg


def ts_config_for(language: str | None) -> str:
    """The text-search configuration for a ``RAG_BM25_LANGUAGE`` value ("dutch" -> dutch, "none" -> simple)."""
    name = _TS_CONFIGS.get((language or "").lower(), (language or "").lower())
    if not re.fullmatch(r"[a-z_]+", name):
        raise ConfigError(f"RAG_BM25_LANGUAGE={language!r} is not a PostgreSQL text-search configuration")
    return name


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class Database:
    """A thread-safe pool of psycopg connections to ``url`` (see the module doc)."""

    def __init__(self, url: str, *, connect_timeout: float = 3.0, max_idle: int = 4,
                 statement_timeout_ms: int | None = 30_000, call_timeout: float | None = None) -> None:
        """``call_timeout``: seconds a ``run()`` call may take on its connection, measured here (the
        socket is shut down after: a frozen server gives ``StoreUnavailable`` instead of a hang)."""
        if not url:
            raise ConfigError("RAG_STORE=postgres needs RAG_DATABASE_URL (postgresql://user@host/db); "
                              "`rag db start` runs a private server and prints one")
        self.url = url
        self.connect_timeout = max(1, int(round(connect_timeout)))
        self.max_idle = max_idle
        self.statement_timeout_ms = statement_timeout_ms
        self.call_timeout = call_timeout
        from rag.index.postgres.watchdog import Watchdog

        self._watchdog = Watchdog()
        self._idle: list = []
        self._lock = threading.Lock()
        self._closed = False

    # ---- connections
    def connect(self, *, autocommit: bool = True):
        """A new connection (not pooled): the caller closes it."""
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
            if self.statement_timeout_ms:
                conn.execute(f"SET statement_timeout = {int(self.statement_timeout_ms)}")
        except psycopg.OperationalError as e:
            raise StoreUnavailable(f"the database at {redact(self.url)} does not answer: {_first_line(e)}") from e
        conn.autocommit = autocommit
        return conn

    def _get(self):
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not conn.broken:
                    return conn, True
                _close_quietly(conn)
        return self.connect(), False

    def _put(self, conn) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle and not conn.closed and not conn.broken:
                self._idle.append(conn)
                return
        _close_quietly(conn)

    def run(self, fn: Callable[..., T]) -> T:
        """``fn(conn)`` on a pooled autocommit connection; reconnects once when a reused connection
        turned out dead (the server restarted); ``StoreUnavailable`` when the server is down."""
        psycopg = _psycopg()
        for attempt in (1, 2):
            conn, reused = self._get()
            guard = None
            try:
                with self._watchdog.guard(conn, self.call_timeout) as guard:
                    result = fn(conn)
            except psycopg.errors.QueryCanceled as e:  # statement_timeout: the server is up but slow
                self._put(conn)
                raise self._timed_out(e) from e
            except psycopg.OperationalError as e:
                _close_quietly(conn)
                if guard is not None and guard.fired:  # our own deadline: the server does not answer
                    raise StoreUnavailable(f"the database at {redact(self.url)} did not answer within "
                                           f"{self.call_timeout:g} s (RAG_DB_TIMEOUT)") from e
                if reused and attempt == 1:
                    log.info("database connection lost (%s); reconnecting", _first_line(e))
                    continue
                raise StoreUnavailable(f"the database at {redact(self.url)} does not answer: {_first_line(e)}") from e
            except BaseException:
                if conn.broken:
                    _close_quietly(conn)
                else:
                    self._put(conn)
                raise
            if guard.fired:  # finished just as the deadline passed: the socket is shut, do not pool it
                _close_quietly(conn)
            else:
                self._put(conn)
            return result
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator:
        """A dedicated connection in one transaction (committed on success, rolled back otherwise)."""
        psycopg = _psycopg()
        conn = self.connect(autocommit=False)
        try:
            try:
                with conn.transaction():
                    yield conn
            except psycopg.errors.QueryCanceled as e:
                raise self._timed_out(e) from e
            except psycopg.OperationalError as e:
                raise StoreUnavailable(f"the database at {redact(self.url)} went away: {_first_line(e)}") from e
        finally:
            _close_quietly(conn)

    def _timed_out(self, e: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"the database at {redact(self.url)} did not finish a query within "
                                f"{(self.statement_timeout_ms or 0) / 1000:g} s: {_first_line(e)}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for c in idle:
            _close_quietly(c)

    # ---- schema
    def migrate(self) -> list[int]:
        """Apply the migrations the database has not seen yet; return their numbers."""
        applied: list[int] = []
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS rag_schema_version (version int PRIMARY KEY, name text NOT NULL, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            done = {r[0] for r in conn.execute("SELECT version FROM rag_schema_version")}
            for number, path in migrations():
                if number in done:
                    continue
                log.info("applying migration %s", path.name)
                conn.execute(path.read_text("utf-8"))
                conn.execute("INSERT INTO rag_schema_version (version, name) VALUES (%s, %s)", (number, path.name))
                applied.append(number)
        return applied

    def schema_version(self) -> int:
        def q(conn):
            if conn.execute("SELECT to_regclass('rag_schema_version')").fetchone()[0] is None:
                return 0
            return conn.execute("SELECT coalesce(max(version), 0) FROM rag_schema_version").fetchone()[0]
        return self.run(q)


def migrations() -> list[tuple[int, Path]]:
    out = []
    for p in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = re.match(r"(\d+)_", p.name)
        if m:
            out.append((int(m.group(1)), p))
    return out


def ensure_embedding_column(conn, dimension: int, *, m: int = 16, ef_construction: int = 64) -> bool:
    """Make ``rag_chunks.embedding`` a ``vector(dimension)`` with an HNSW cosine index.
    Returns True when the column was (re)created, which empties ``rag_chunks`` (call in a transaction)."""
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = 'rag_chunks'::regclass AND a.attname = 'embedding' AND NOT a.attisdropped").fetchone()
    if row is not None and row[0] == f"vector({int(dimension)})":
        return False
    conn.execute("DELETE FROM rag_chunks")
    conn.execute("DROP INDEX IF EXISTS rag_chunks_embedding")
    conn.execute("ALTER TABLE rag_chunks DROP COLUMN IF EXISTS embedding")
    conn.execute(f"ALTER TABLE rag_chunks ADD COLUMN embedding vector({int(dimension)}) NOT NULL")
    conn.execute(f"CREATE INDEX rag_chunks_embedding ON rag_chunks USING hnsw (embedding vector_cosine_ops) "
                 f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})")
    return True


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _close_quietly(conn) -> None:
    try:
        conn.close()
    except Exception:
        pass
