"""A client that asks for a streamed answer and then stops reading must not keep its LLM slot, nor the
upstream LLM request, past RAG_LLM_TIMEOUT (issue 37 item 3). A real uvicorn server, the fake Ollama
server flooding a long answer, one LLM slot and no waiting line (as the probe had it)."""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlparse

import anyio
import httpx
import pytest

from api.answering import GuardedStream, sse
from api.app import create_app
from api.server import timed_protocol
from rag.answer.pipeline import Pipeline
from tests.api_fixtures import parse_sse
from tests.fake_ollama import split_pieces
from tests.live_server import live_server

TIMEOUT = 3.0  # RAG_LLM_TIMEOUT for these tests
FLOOD = ["Jihyun Park " + "x" * 50_000 for _ in range(500)]  # ~25 MB: more than the sockets' buffers hold
ANSWER = "Jihyun Park is een Noord-Koreaanse vluchteling [1]."
ASK = {"question": "Wie is Jihyun Park?", "generator": "ollama"}


@contextmanager
def one_slot_server(runtime, fake_ollama) -> Iterator[str]:
    """``rag serve``'s app and protocol on the session's index: the fake Ollama, RAG_LLM_TIMEOUT
    ``TIMEOUT``, one LLM slot and no waiting line (as the probe had it). Yields the base URL."""
    settings = runtime.settings.model_copy(update={
        "ollama_host": fake_ollama.url, "llm_probe_timeout": 1.0, "llm_timeout": TIMEOUT,
        "max_concurrent_llm": 1, "max_queued": 0})
    with live_server(create_app(settings, runtime=runtime), http=timed_protocol(10)) as url:
        yield url


def stalled_ask(url: str, path: str, body: bytes) -> socket.socket:
    """Send a streamed ask, read the status line, then never read again (the socket stays open)."""
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    s.settimeout(30)
    assert s.recv(12).startswith(b"HTTP/1.1 200")
    return s


@pytest.mark.parametrize("path, body", [
    ("/api/ask", b'{"question": "Wie is Jihyun Park?", "generator": "ollama", "stream": true}'),
    ("/v1/chat/completions", b'{"model": "rag-ollama", "stream": true, '
                             b'"messages": [{"role": "user", "content": "Wie is Jihyun Park?"}]}'),
])
def test_a_stalled_reader_loses_its_slot_at_the_llm_timeout(runtime, fake_ollama, path, body):
    fake_ollama.reply = FLOOD
    with one_slot_server(runtime, fake_ollama) as url:
        t0 = time.monotonic()
        s = stalled_ask(url, path, body)
        try:
            busy = httpx.get(url + "/health", timeout=10).json()["busy"]
            assert busy["running"] == 1  # it holds the one slot
            refused = httpx.post(url + "/api/ask", json=ASK, timeout=30)
            assert refused.status_code == 503  # ... so another ask is refused meanwhile
            while httpx.get(url + "/health", timeout=10).json()["busy"]["running"]:
                assert time.monotonic() - t0 < TIMEOUT + 10, "the slot was never freed"
                time.sleep(0.05)
            freed = time.monotonic() - t0
            print(f"{path}: slot freed {freed:.2f} s after the ask (RAG_LLM_TIMEOUT {TIMEOUT:g} s)")
            assert freed <= TIMEOUT + 2
            assert fake_ollama.wait_for_disconnects(1, timeout=2), "the upstream LLM request was not cut"
            s.settimeout(10)
            rest = b"".join(iter(lambda: s.recv(1 << 20), b""))  # what the buffers held, then the server's close
            assert rest, "nothing was sent at all"
            fake_ollama.reply = ANSWER
            r = httpx.post(url + "/api/ask", json=ASK, timeout=60)
            assert r.status_code == 200, r.text  # the slot is there for the next one
        finally:
            s.close()


SLOW_PASSAGES = TIMEOUT + 0.5  # finding the passages (no LLM call) takes longer than RAG_LLM_TIMEOUT
ANSWER_SECONDS = 1.5  # ... and then the LLM answers well within it


@pytest.mark.parametrize("path, body", [
    ("/api/ask", {**ASK, "stream": True}),
    ("/v1/chat/completions", {"model": "rag-ollama", "stream": True,
                              "messages": [{"role": "user", "content": ASK["question"]}]}),
])
def test_a_reader_gets_the_whole_answer_however_long_the_passages_took(runtime, fake_ollama, monkeypatch,
                                                                       path, body):
    """The stream's RAG_LLM_TIMEOUT (+1 s) counts from the moment the answer starts streaming (its LLM
    call starts then too), not from the slot: time spent before it (retrieval on a busy server, a
    follow-up's rewrite, which has its own deadline) does not cut a reader's answer short."""
    search = Pipeline._retrieve

    def slow_retrieve(self, *args, **kw):
        time.sleep(SLOW_PASSAGES)
        return search(self, *args, **kw)

    monkeypatch.setattr(Pipeline, "_retrieve", slow_retrieve)
    fake_ollama.reply = ANSWER
    fake_ollama.piece_delay = ANSWER_SECONDS / len(split_pieces(ANSWER))
    with one_slot_server(runtime, fake_ollama) as url:
        t0 = time.monotonic()
        r = httpx.post(url + path, json=body, timeout=60)
        took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert took > TIMEOUT + 1  # past a deadline counted from the slot
    if path == "/api/ask":
        events = parse_sse(r.text)
        assert [name for name, _ in events][-1] == "done", r.text
        assert "Jihyun Park" in events[-1][1]["answer"]
    else:
        assert "data: [DONE]" in r.text and "RAG_LLM_TIMEOUT" not in r.text, r.text
        assert "vluchteling" in r.text


def test_the_timeout_event_is_sent_when_the_socket_takes_it():
    """A stream still running at its deadline, to a client that reads: the slot is freed, the client
    gets the error event, and the response ends."""
    closed: list[float] = []

    async def forever():
        yield sse("sources", {"sources": []})
        await anyio.sleep(3600)  # an answer that never comes
        yield sse("done", {})

    async def on_close():
        closed.append(time.monotonic())

    def app_factory():
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                return await send({"type": "lifespan.shutdown.complete"})
            if scope["path"] == "/health":
                from starlette.responses import PlainTextResponse

                return await PlainTextResponse("ok")(scope, receive, send)
            from api.answering import error_event

            stream = GuardedStream(forever(), on_close, deadline=anyio.current_time() + 1.0, last_word=error_event,
                                   media_type="text/event-stream")
            await stream(scope, receive, send)
        return app

    with live_server(app_factory(), http=timed_protocol(10)) as url:
        t0 = time.monotonic()
        r = httpx.get(url + "/stream", timeout=30)
        took = time.monotonic() - t0
    events = parse_sse(r.text)
    assert [name for name, _ in events] == ["sources", "error"], r.text
    assert events[1][1]["status"] == 504 and "RAG_LLM_TIMEOUT" in events[1][1]["message"]
    assert 0.9 <= took < 3 and closed and closed[0] - t0 < 2
