"""The LLM behind the real HTTP server, for both backends (issues 23 and 25): a real uvicorn server,
the session's real index and embedding model, and the fake Ollama / fake OpenAI-compatible server.

* issue 25 point 3: a client that reads the first SSE event and leaves frees its LLM slot at once
  (not after RAG_LLM_TIMEOUT), and the upstream request is cancelled;
* issue 25 point 5: RAG_LLM_TIMEOUT is a real deadline, also when a token keeps arriving just inside
  every read timeout;
* issue 23: answers name their backend, and a thinking trace never reaches a token, answer or citation.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from api.app import create_app
from tests.api_fixtures import free_port, parse_sse, until
from tests.fake_ollama import DEFAULT_MODEL

QUESTION = "Wie is Jihyun Park?"
CITED_REPLY = ("Jihyun Park is een Noord-Koreaanse vluchteling en mensenrechtenactivist die kandidaat is bij de "
               "regionale verkiezingen in het Verenigd Koninkrijk [1].")


@pytest.fixture(params=["ollama", "openai"])
def backend(request):
    """(name, fake server, settings overrides that point the app at it)."""
    if request.param == "ollama":
        fake = request.getfixturevalue("fake_ollama")
        return "ollama", fake, {"generator": "ollama", "ollama_host": fake.url}
    fake = request.getfixturevalue("fake_openai")
    return "openai", fake, {"generator": "openai", "openai_base_url": fake.base_url}


@pytest.fixture
def serve(runtime, backend):
    """``serve(**settings overrides)`` -> base URL of the app (uvicorn in a thread) talking to the backend's fake."""
    import uvicorn

    servers = []
    _, fake, point = backend

    def start(**overrides) -> str:
        settings = runtime.settings.model_copy(update={"llm_model": DEFAULT_MODEL, "llm_probe_timeout": 1.0,
                                                       "llm_timeout": 60.0, **point, **overrides})
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings, runtime=runtime), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        until(lambda: server.started, what="uvicorn to start")
        return f"http://127.0.0.1:{port}"

    yield start
    fake.reset()  # wake handlers still waiting
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def running(url: str) -> int:
    return httpx.get(url + "/health", timeout=5).json()["busy"]["running"]


STREAMS = {
    "/api/ask": lambda name: {"question": QUESTION, "stream": True, "generator": name},
    "/v1/chat/completions": lambda name: {"model": f"rag-{name}", "stream": True,
                                          "messages": [{"role": "user", "content": QUESTION}]},
}


@pytest.mark.parametrize("route", list(STREAMS))
@pytest.mark.parametrize("mode", ["slow", "stall"])
def test_an_abandoned_stream_frees_its_slot_and_cancels_the_llm(serve, backend, route, mode):
    """Issue 25 point 3: the LLM waits before its first byte ("slow") or stalls after two pieces
    ("stall"), with RAG_LLM_TIMEOUT=60; the client reads the first event and closes the socket."""
    name, fake, _ = backend
    url = serve(max_concurrent_llm=1, max_queued=0)
    assert httpx.get(url + "/health").json()["generator"] == name  # status cached while the fake is fast
    fake.mode, fake.slow_seconds, fake.reply = mode, 120, CITED_REPLY
    with httpx.stream("POST", url + route, json=STREAMS[route](name), timeout=30) as r:
        assert r.status_code == 200
        lines = r.iter_lines()  # (kept: a dropped line iterator closes the response)
        next(lines)  # the first event (sources / the role chunk) ...
        until(lambda: running(url) == 1 and fake.chat_requests, what="the LLM call to start")
        if mode == "stall":
            until(lambda: any("een" in line or "Jihyun" in line for line in lines), what="the first tokens")
    # ... and the client is gone: the slot comes back within a few seconds (not after 60), upstream is cut
    until(lambda: running(url) == 0, timeout=5, what="the slot to be freed")
    assert fake.wait_for_disconnects(1, timeout=5) and fake.chat_path in fake.disconnects
    fake.mode, fake.reply = None, CITED_REPLY
    r = httpx.post(url + "/api/ask", json={"question": QUESTION, "generator": name}, timeout=30)
    assert r.status_code == 200 and r.json()["generator"] == name  # the one slot is free again


def test_the_llm_time_limit_is_a_deadline_not_a_per_token_wait(serve, backend):
    """Issue 25 point 5: one token every 0.6 x RAG_LLM_TIMEOUT resets every read timeout; the answer
    still ends at the limit with 504 (after 2 tokens, at 0 and 0.6 T; the old check let a third in)."""
    name, fake, _ = backend
    limit = 2.0
    url = serve(llm_timeout=limit)
    httpx.get(url + "/health")
    fake.reply = " ".join(["woord"] * 20)
    fake.piece_delay = limit * 0.6
    r = httpx.post(url + "/api/ask", json={"question": QUESTION, "generator": name}, timeout=30)
    assert r.status_code == 504 and f"within {limit:g} s" in r.json()["detail"]
    r = httpx.post(url + "/api/ask", json={"question": QUESTION, "generator": name, "stream": True}, timeout=30)
    events = parse_sse(r.text)
    assert [e for e, _ in events].count("token") <= 2
    assert events[-1][0] == "error" and events[-1][1]["status"] == 504


def test_answers_name_the_backend_and_never_carry_the_trace(serve, backend):
    name, fake, _ = backend
    url = serve()
    fake.thinking = "Plan: de vraag gaat over Jihyun Park, bron een noemt haar leeftijd."
    if name == "ollama":
        fake.capabilities = ["completion", "thinking"]
    fake.reply = ["<think>", "nog een plan", "</think>", *CITED_REPLY.split(" ")]
    fake.reply = [fake.reply[0], fake.reply[1], fake.reply[2]] + [w if i == 0 else " " + w
                                                                  for i, w in enumerate(CITED_REPLY.split(" "))]
    health = httpx.get(url + "/health").json()
    assert health["generator"] == name and health["ollama"]["backend"] == name
    r = httpx.post(url + "/api/ask", json={"question": QUESTION, "stream": True}, timeout=30)
    events = parse_sse(r.text)
    tokens = "".join(d["text"] for e, d in events if e == "token")
    done = events[-1][1]
    assert events[-1][0] == "done" and done["generator"] == name
    for text in (tokens, done["answer"], *[c["text"] for c in done["citations"]]):
        assert "plan" not in text.lower() and "<think>" not in text
    assert done["citations"] and not done["abstained"]
    assert fake.last_chat.get("think", False) is False  # RAG_THINK defaults to false
