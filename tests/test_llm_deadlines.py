"""Issue 36 point 3: one deadline for every LLM call, streamed or not (rewrite, answer, judge).

The fake servers' ``drip`` mode sends the answer one byte every ``drip_seconds``: every read
finishes well inside the read timeout, so only a deadline on the whole call can end it. Both
backends (Ollama's API through the ``ollama`` client, an OpenAI-compatible server through the
``openai`` client), both on their own and behind the real HTTP server.
"""

from __future__ import annotations

import time

import httpx
import pytest

from rag.errors import LLMTimeout
from rag.llms.ollama import OllamaLLM
from rag.llms.openai import OpenAILLM
from tests.fake_ollama import DEFAULT_MODEL
from tests.test_llm_http_streams import backend, serve  # noqa: F401 -- fixtures: (name, fake, settings), the app

LIMIT = 2.0
MESSAGES = [{"role": "user", "content": "Wat is de hoofdstad van Nederland?"}]
ENGLISH = "Who is Jihyun Park?"


def _adapter(name: str, fake, timeout: float):
    if name == "ollama":
        return OllamaLLM(host=fake.url, model=DEFAULT_MODEL, timeout=timeout, probe_timeout=1.0)
    return OpenAILLM(base_url=fake.base_url, model=DEFAULT_MODEL, timeout=timeout, probe_timeout=1.0)


def test_a_dripping_server_ends_a_non_streamed_call_at_the_deadline(backend):  # noqa: F811
    name, fake, _ = backend
    fake.reply = " ".join(["woord"] * 40)
    with _adapter(name, fake, LIMIT) as llm:
        assert llm.chat(MESSAGES) == fake.reply  # not dripping: the whole answer
        fake.mode, fake.drip_seconds = "drip", 0.2  # a byte every 0.2 s: each read is quick, the body takes minutes
        t = time.monotonic()
        with pytest.raises(LLMTimeout, match=f"within {LIMIT:g} s"):
            llm.chat(MESSAGES)
        took = time.monotonic() - t
    assert LIMIT - 0.1 <= took < LIMIT + 1, took
    assert fake.wait_for_disconnects(1, timeout=5)  # the connection was cut: the server stops sending


def test_a_dripping_stream_ends_at_the_deadline_too(backend):  # noqa: F811
    name, fake, _ = backend
    fake.reply = " ".join(["woord"] * 40)
    fake.mode, fake.drip_seconds = "drip", 0.05
    with _adapter(name, fake, LIMIT) as llm:
        t = time.monotonic()
        with pytest.raises(LLMTimeout):
            list(llm.stream_chat(MESSAGES))
    assert time.monotonic() - t < LIMIT + 1


HISTORY = [{"role": "user", "content": "Wie is Jihyun Park?"},
           {"role": "assistant", "content": "Jihyun Park is een Noord-Koreaanse vluchteling [1]."}]
FOLLOW_UP = "How old is she?"  # leans on the conversation: the LLM rewrites it (a non-streamed call) first


@pytest.mark.parametrize("kind", ["english", "follow-up"])
@pytest.mark.parametrize("route", ["/api/ask", "/v1/chat/completions"])
def test_a_question_ends_at_the_llm_timeout(serve, backend, route, kind):  # noqa: F811
    """The issue's probe: an English question, or a follow-up (rewritten by a non-streamed call first),
    with the server dripping: the request ends at RAG_LLM_TIMEOUT (+1 s) -- 504 when the LLM was asked
    for, else the extractive answer. "+1 s" is on top of what the same question costs extractively
    (retrieval, on a machine that may be busy)."""
    name, fake, _ = backend
    url = serve(llm_timeout=LIMIT)
    assert httpx.get(url + "/health").json()["generator"] == name  # the status is cached while the fake is quick
    question, history = (ENGLISH, []) if kind == "english" else (FOLLOW_UP, HISTORY)

    def ask(generator: str) -> tuple[httpx.Response, float]:
        if route == "/api/ask":
            body = {"question": question, "generator": generator, "history": history}
        else:
            model = {"auto": "rag", "extractive": "rag-extractive"}.get(generator, f"rag-{name}")
            body = {"model": model, "messages": [*history, {"role": "user", "content": question}]}
        t = time.monotonic()
        r = httpx.post(url + route, json=body, timeout=60)
        return r, time.monotonic() - t

    r, base = ask("extractive")
    assert r.status_code == 200, r.text
    fake.mode, fake.drip_seconds = "drip", 0.2
    fake.reply = '{"standalone": "How old is Jihyun Park?", "dutch": "Hoe oud is Jihyun Park?"}'
    r, took = ask(name)
    assert r.status_code == 504, r.text
    assert took < LIMIT + 1 + base, (took, base)
    r, took_auto = ask("auto")
    assert r.status_code == 200, r.text
    assert took_auto < LIMIT + 1 + base, (took_auto, base)
    if route == "/api/ask":
        answer = r.json()
        assert answer["generator"] == "extractive" and answer["citations"]
        assert any(f"within {LIMIT:g} s" in w for w in answer["warnings"])
    else:
        assert r.json()["rag"]["generator"] == "extractive"
    assert len(fake.chat_requests) == 2  # one LLM call each (the rewrite or the answer), cut at the deadline
    if kind == "follow-up":
        assert all(c.get("stream") is False for c in fake.chat_requests)  # the non-streamed rewrite
    print(f"{name} {route} {kind}, RAG_LLM_TIMEOUT={LIMIT:g}, dripping server: 504 after {took:.2f} s; auto: "
          f"extractive answer after {took_auto:.2f} s (the extractive answer alone: {base:.2f} s)")
