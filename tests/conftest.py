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
