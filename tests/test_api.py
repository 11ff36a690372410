"""The HTTP API against the real app: a real index built once per module from data/articles,
the real embedding model, and the fake Ollama server (tests/fake_ollama.py)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi.testclient import TestClient  # noqa: E402

from api.app import CSP, create_app  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.runtime import Runtime, open_runtime  # noqa: E402
from rag.schema import Answer  # noqa: E402
from tests.api_fixtures import DATA_DIR, copy_data, parse_sse, until  # noqa: E402

QUESTION = "Wie is Jihyun Park?"
PARK_DOC = "01-jihyun-park-verkiezingskandidaat"
CITED_REPLY = ("Jihyun Park is een Noord-Koreaanse vluchteling, mensenrechtenactivist en aspirant-politicus "
               "die kandidaat is bij de regionale verkiezingen in het Verenigd Koninkrijk [1].")
ANSWER_KEYS = set(Answer(question="q", answer="a", abstained=False, generator="extractive").to_dict())
HIT_KEYS = {"rank", "score", "doc_id", "title", "text", "start", "end", "chunk_id", "bm25_score", "dense_score", "date",
            "date_source"}


# ============================================================================ fixtures

@pytest.fixture(scope="module")
def api_runtime(tmp_path_factory) -> Runtime:
    """The real index and embedding model (the configured one, or its offline fallback), built once for this module."""
    settings = Settings(data_dir=DATA_DIR, index_dir=tmp_path_factory.mktemp("api") / "index")
    return open_runtime(settings, build_if_missing=True)


@pytest.fixture
def make_client(api_runtime: Runtime, fake_ollama) -> Iterator:
    """``make_client(**settings overrides)`` -> a started TestClient on a fresh app that shares the
    module's api_runtime and talks to the fake Ollama server."""
    clients = []

    def make(rt: Runtime | None = None, **overrides) -> TestClient:
        rt = rt or api_runtime
        settings = rt.settings.model_copy(update={"ollama_host": fake_ollama.url, "llm_probe_timeout": 1.0,
                                                  "llm_timeout": 20.0,
                                                  "allowed_hosts": "testserver", **overrides})
        client = TestClient(create_app(settings, runtime=rt), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    fake_ollama.reset()  # wake handlers still waiting before the clients shut down
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def ask(client: TestClient, **body) -> httpx.Response:
    return client.post("/api/ask", json={"question": QUESTION, **body})


def ask_stream(client: TestClient, **body) -> tuple[httpx.Response, list]:
    r = client.post("/api/ask", json={"question": QUESTION, "stream": True, **body})
    return r, parse_sse(r.text) if r.headers.get("content-type", "").startswith("text/event-stream") else []


# ============================================================================ /health

def test_health_reports_counts_models_and_ollama(client, api_runtime, fake_ollama):
    r = client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok"
    assert h["documents"] == len(api_runtime.store.documents) == 10
    assert h["chunks"] == len(api_runtime.store.chunks) > 0
    assert h["embedding_model"] == api_runtime.embedder.model_id
    assert h["configured_embedding_model"] == api_runtime.settings.embed_model
    assert h["embedding_fallback"] == api_runtime.embedder.fallback_reason  # visible (offline: the MiniLM fallback)
    assert h["generator"] == "ollama"
    assert h["ollama"]["reachable"] is True and h["ollama"]["model"] == api_runtime.settings.llm_model
    assert isinstance(h["ollama"]["model"], str)


def test_health_generator_is_extractive_without_the_model(make_client, fake_ollama):
    fake_ollama.mode = "model_missing"
    h = make_client().get("/health").json()
    assert h["generator"] == "extractive"
    assert h["ollama"]["reachable"] is True and h["ollama"]["model_available"] is False
    assert "ollama pull" in h["ollama"]["detail"]


def test_health_when_ollama_is_down(make_client, fake_ollama):
    fake_ollama.stop()
    h = make_client().get("/health").json()
    assert h["generator"] == "extractive"
    assert h["ollama"]["reachable"] is False


def test_health_does_not_wait_for_a_hanging_ollama(make_client, fake_ollama):
    fake_ollama.mode = "slow"  # the status probe hangs
    c = make_client(llm_probe_timeout=0.5)
    t0 = time.monotonic()
    h = c.get("/health").json()
    assert time.monotonic() - t0 < 2.0
    assert h["ollama"]["reachable"] is False and h["generator"] == "extractive"
    t0 = time.monotonic()
    for _ in range(5):
        assert c.get("/health").status_code == 200
    assert time.monotonic() - t0 < 4.0


def test_health_caches_the_ollama_status(client, fake_ollama):
    client.get("/health")
    n = sum(r.path == "/api/tags" for r in fake_ollama.requests)
    for _ in range(5):
        client.get("/health")
    assert sum(r.path == "/api/tags" for r in fake_ollama.requests) == n


# ============================================================================ /api/search

def test_search_returns_the_cli_json_object(client, api_runtime):
    r = client.get("/api/search", params={"q": QUESTION, "k": 3, "mode": "hybrid"})
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["results"]
    expected = [h.to_dict() for h in api_runtime.retriever.search(QUESTION, k=3, mode="hybrid")]
    assert body["results"] == expected  # exactly what `rag search --json` prints
    assert len(body["results"]) == 3 and set(body["results"][0]) == HIT_KEYS
    assert body["results"][0]["doc_id"] == PARK_DOC


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_search_modes(client, mode):
    r = client.get("/api/search", params={"q": "spijkerbroek censuur", "k": 2, "mode": mode})
    assert r.status_code == 200 and len(r.json()["results"]) == 2


def test_search_defaults(client):
    assert len(client.get("/api/search", params={"q": QUESTION}).json()["results"]) == 5


@pytest.mark.parametrize("params, needle", [
    ({"q": QUESTION, "k": 0}, "k:"),
    ({"q": QUESTION, "k": 51}, "k:"),
    ({"q": QUESTION, "k": "veel"}, "k:"),
    ({"q": QUESTION, "mode": "fuzzy"}, "mode:"),
    ({}, "q: this field is required"),
    ({"q": "   "}, "empty"),
    ({"q": "x" * 2001}, "too long"),
])
def test_search_validation(client, params, needle):
    r = client.get("/api/search", params=params)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str) and needle in r.json()["detail"]


# ============================================================================ /api/documents

def test_documents_list(client, api_runtime):
    r = client.get("/api/documents")
    assert r.status_code == 200
    docs = r.json()["documents"]
    assert len(docs) == len(api_runtime.store.documents)
    assert {d["doc_id"] for d in docs} == set(api_runtime.store.documents)
    for d in docs:
        assert {"doc_id", "title", "metadata", "chunks"} <= set(d)
        assert d["chunks"] == len(api_runtime.store.chunk_indices(d["doc_id"])) > 0
    assert sum(d["chunks"] for d in docs) == len(api_runtime.store.chunks)


def test_document_has_the_text_that_hits_point_into(client, api_runtime):
    hit = client.get("/api/search", params={"q": QUESTION, "k": 1}).json()["results"][0]
    r = client.get(f"/api/documents/{hit['doc_id']}")
    assert r.status_code == 200
    doc = r.json()
    stored = api_runtime.store.documents[hit["doc_id"]]
    assert doc["text"] == stored.text and doc["title"] == stored.title and doc["metadata"] == stored.metadata
    assert doc["text"][hit["start"]:hit["end"]] == hit["text"]  # a citation can be highlighted in place


def test_unknown_document_is_404_with_a_message(client):
    r = client.get("/api/documents/bestaat-niet")
    assert r.status_code == 404
    assert "bestaat-niet" in r.json()["detail"]


# ============================================================================ page, static files, CSP, docs

def test_chat_page_and_static_files_have_a_strict_csp(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    for part in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                 "object-src 'none'", "base-uri 'none'", "connect-src 'self'", "img-src 'self' data:"):
        assert part in r.headers["content-security-policy"]
    html = r.text
    assert '<script src="/static/app.js"' in html and "<script>" not in html and "style=" not in html
    for path, ctype in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        s = client.get(path)
        assert s.status_code == 200 and ctype in s.headers["content-type"]
        assert s.headers["content-security-policy"] == CSP
    js = client.get("/static/app.js").text
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "outerHTML" not in js


def test_docs_page_is_not_broken_by_the_csp(client):
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    assert "content-security-policy" not in r.headers
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/api/search", "/api/ask", "/api/documents", "/api/documents/{doc_id}", "/api/reindex"):
        assert path in spec["paths"], path


def test_docs_page_works_offline(client):
    html = client.get("/docs").text
    assert "cdn." not in html  # no third-party host: the page is served from the installed bundle
    assert "/docs-static/swagger-ui-bundle.js" in html
    js = client.get("/docs-static/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/docs-static/swagger-ui.css").status_code == 200


# ============================================================================ /api/ask (JSON)

def test_ask_returns_the_answer_object(client, fake_ollama, api_runtime):
    fake_ollama.reply = CITED_REPLY
    r = ask(client, k=4)
    assert r.status_code == 200, r.text
    a = r.json()
    assert set(a) == ANSWER_KEYS  # the same object as `rag ask --json`
    assert a["question"] == QUESTION
    assert a["generator"] == "ollama" and a["abstained"] is False
    assert "Jihyun Park" in a["answer"]
    assert a["sources"] and set(a["sources"][0]) == HIT_KEYS and len(a["sources"]) <= 4
    assert a["citations"], a
    c = a["citations"][0]
    assert {"n", "doc_id", "title", "text", "start", "end"} <= set(c)
    assert c["doc_id"] == PARK_DOC
    assert api_runtime.store.documents[c["doc_id"]].text[c["start"]:c["end"]] == c["text"]
    assert fake_ollama.chat_requests, "Ollama was not asked"


def test_ask_extractive_does_not_call_ollama(client, fake_ollama):
    r = ask(client, generator="extractive")
    assert r.status_code == 200
    a = r.json()
    assert a["generator"] == "extractive" and a["answer"]
    assert not fake_ollama.chat_requests


def test_ask_auto_falls_back_to_extractive_when_ollama_is_down(make_client, fake_ollama):
    fake_ollama.stop()
    r = ask(make_client(), generator="auto")
    assert r.status_code == 200
    a = r.json()
    assert a["generator"] == "extractive"
    assert a["warnings"], "the fallback must be visible"


def test_ask_sends_the_history_along(client, fake_ollama):
    fake_ollama.reply = CITED_REPLY
    history = [{"role": "user", "content": QUESTION},
               {"role": "assistant", "content": "Jihyun Park is een Noord-Koreaanse vluchteling [1]."}]
    r = client.post("/api/ask", json={"question": "Waar woont ze nu?", "history": history})
    assert r.status_code == 200, r.text
    sent = " ".join(str(m.get("content")) for body in fake_ollama.chat_requests for m in body["messages"])
    assert "Jihyun Park" in sent  # the earlier turn reached the model (rewrite or prompt)


@pytest.mark.parametrize("mode, status, error, word", [
    ("model_missing", 503, "LLMModelNotFound", "ollama pull"),
    ("http_500", 502, "LLMError", "llama runner"),
    ("break_stream", 502, "LLMStreamBroken", "Ollama"),
    ("garbage", 502, "LLMStreamBroken", "Ollama"),
    ("stream_error", 502, "LLMStreamBroken", "broke off"),
])
def test_ask_llm_errors_map_to_status_codes(make_client, fake_ollama, mode, status, error, word):
    c = make_client()
    fake_ollama.mode = mode
    r = ask(c, generator="ollama")
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and word in body["detail"]
    assert "Traceback" not in r.text


def test_ask_llm_down_is_503(make_client, fake_ollama):
    c = make_client()
    fake_ollama.stop()
    r = ask(c, generator="ollama")
    assert r.status_code == 503 and r.json()["error"] == "LLMUnavailable"


def test_asking_for_a_backend_the_server_does_not_run_is_422(make_client, fake_ollama):
    """The server runs Ollama: a request for the OpenAI-compatible backend cannot be served by retrying."""
    r = ask(make_client(), generator="openai")
    assert r.status_code == 422 and r.json()["error"] == "InvalidQuery"
    assert "'openai'" in r.json()["detail"] and "'ollama'" in r.json()["detail"]


def test_ask_llm_timeout_is_504(make_client, fake_ollama):
    c = make_client(llm_timeout=1.0)
    c.get("/health")  # status cached while the fake is still fast
    fake_ollama.reply = CITED_REPLY
    fake_ollama.piece_delay = 0.4  # the answer takes longer than llm_timeout
    r = ask(c, generator="ollama")
    assert r.status_code == 504, r.text
    assert r.json()["error"] == "LLMTimeout"


# ============================================================================ /api/ask (SSE)

def test_ask_stream_event_order(client, fake_ollama):
    fake_ollama.reply = CITED_REPLY
    r, events = ask_stream(client, k=3)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    names = [n for n, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert names.count("sources") == 1 and names.count("done") == 1
    assert set(names[1:-1]) == {"token"} and len(names) > 3
    sources = events[0][1]["sources"]
    assert 0 < len(sources) <= 3 and set(sources[0]) == HIT_KEYS
    done = events[-1][1]
    assert set(done) == ANSWER_KEYS and done["generator"] == "ollama"
    streamed = "".join(d["text"] for n, d in events if n == "token")
    assert "Jihyun Park" in streamed
    assert done["sources"] == sources


def test_ask_stream_with_accept_header(client, fake_ollama):
    fake_ollama.reply = CITED_REPLY
    r = client.post("/api/ask", json={"question": QUESTION}, headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("text/event-stream")
    names = [n for n, _ in parse_sse(r.text)]
    assert names[0] == "sources" and names[-1] == "done"


def test_explicit_stream_false_wins_over_the_accept_header(client, fake_ollama):
    fake_ollama.reply = CITED_REPLY
    r = client.post("/api/ask", json={"question": QUESTION, "stream": False}, headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("application/json") and set(r.json()) == ANSWER_KEYS


def test_ask_stream_extractive(client, fake_ollama):
    r, events = ask_stream(client, generator="extractive")
    names = [n for n, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert events[-1][1]["generator"] == "extractive"
    assert not fake_ollama.chat_requests


@pytest.mark.parametrize("mode", ["stream_error", "break_stream"])
def test_ask_stream_error_event(make_client, fake_ollama, mode):
    c = make_client()
    c.get("/health")
    fake_ollama.reply = CITED_REPLY
    fake_ollama.mode = mode
    r, events = ask_stream(c, generator="ollama")
    if r.status_code != 200:  # failed before the first event: a plain error response is fine too
        assert r.status_code in (502, 503) and r.json()["detail"]
        return
    names = [n for n, _ in events]
    assert names[-1] == "error" and "done" not in names
    err = events[-1][1]
    assert err["message"] and "Traceback" not in r.text
    assert err["status"] in (502, 503, 504)


def test_ask_stream_error_when_ollama_is_down(make_client, fake_ollama):
    c = make_client()
    fake_ollama.stop()
    r, events = ask_stream(c, generator="ollama")
    if r.status_code == 200:
        assert events[-1][0] == "error" and events[-1][1]["message"]
    else:
        assert r.status_code == 503 and r.json()["detail"]


# ============================================================================ validation

@pytest.mark.parametrize("body, needle", [
    ({"question": ""}, "question: the question is empty"),
    ({"question": "  \n "}, "question: the question is empty"),
    ({"question": "x" * 2001}, "too long"),
    ({}, "question: this field is required"),
    ({"question": 42}, "question:"),
    ({"question": QUESTION, "k": 0}, "k:"),
    ({"question": QUESTION, "k": 51}, "k:"),
    ({"question": QUESTION, "mode": "fuzzy"}, "mode:"),
    ({"question": QUESTION, "generator": "gpt"}, "generator:"),
    ({"question": QUESTION, "history": [{"role": "system", "content": "x"}]}, "history.0.role"),
    ({"question": QUESTION, "history": "nee"}, "history:"),
    ([QUESTION], "JSON object"),
])
def test_ask_validation_is_422_with_a_readable_detail(client, body, needle):
    r = client.post("/api/ask", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and needle in detail, detail


def test_question_length_limit_follows_settings(make_client):
    c = make_client(max_question_chars=20)
    r = c.post("/api/ask", json={"question": "x" * 21})
    assert r.status_code == 422 and "at most 20" in r.json()["detail"]


def test_invalid_json_is_422(client):
    r = client.post("/api/ask", content=b'{"question": "Wie', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["detail"]


def test_body_over_the_limit_is_413_by_content_length(client):
    big = b'{"question": "' + b"x" * 70_000 + b'"}'
    r = client.post("/api/ask", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "too large" in r.json()["detail"]


def test_body_over_the_limit_is_413_without_content_length(client):
    def chunks():  # chunked transfer: no Content-Length header to check
        yield b'{"question": "'
        for _ in range(20):
            yield b"x" * 5_000
        yield b'"}'

    r = client.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "too large" in r.json()["detail"]


def test_body_limit_follows_settings(make_client):
    c = make_client(max_body_bytes=100)
    r = c.post("/api/ask", json={"question": "x" * 150})
    assert r.status_code == 413


def test_server_survives_bad_requests(client, fake_ollama, api_runtime, monkeypatch):
    client.post("/api/ask", content=b"\xff\xfe garbage", headers={"Content-Type": "application/json"})
    client.post("/api/ask", content=b"x" * 100_000, headers={"Content-Type": "application/json"})
    client.post("/api/ask", json={"question": None})
    client.get("/api/search", params={"q": "\x00" * 10})
    client.get("/api/documents/" + "%2e%2e/" * 5 + "etc/passwd")
    assert client.get("/nope").status_code == 404
    # an unexpected bug inside a route: 500 with a message, no traceback
    monkeypatch.setattr(api_runtime.retriever, "search", lambda *a, **k: 1 / 0)
    r = client.get("/api/search", params={"q": QUESTION})
    assert r.status_code == 500 and "Traceback" not in r.text and "ZeroDivision" not in r.text
    assert r.json()["detail"]
    monkeypatch.undo()
    # ... and normal requests still work
    assert client.get("/health").json()["status"] == "ok"
    fake_ollama.reply = CITED_REPLY
    r = ask(client)
    assert r.status_code == 200 and r.json()["answer"]


# ============================================================================ concurrency

def test_busy_server_answers_503_with_retry_after(make_client, fake_ollama):
    c = make_client(max_concurrent_llm=1, max_queued=0)
    c.get("/health")  # Ollama status cached before the fake gets slow
    fake_ollama.reply = " ".join(["woord"] * 60) + " [1]."
    fake_ollama.piece_delay = 0.2  # holds the first request for a while
    first: dict = {}
    t = threading.Thread(target=lambda: first.setdefault("r", ask(c, generator="ollama")))
    t.start()
    try:
        until(lambda: c.get("/health").json()["busy"]["running"] == 1, what="the first ask to start")
        r = ask(c, generator="ollama")
        assert r.status_code == 503
        assert r.headers["Retry-After"].isdigit()
        assert "busy" in r.json()["detail"]
        # /health stays fast while the answer is being generated
        t0 = time.monotonic()
        assert c.get("/health").status_code == 200
        assert time.monotonic() - t0 < 0.5
        # an extractive answer needs no LLM slot: it is not refused
        r = ask(c, generator="extractive")
        assert r.status_code == 200 and r.json()["generator"] == "extractive"
    finally:
        fake_ollama.piece_delay = 0.0
        t.join(timeout=30)
    assert first["r"].status_code == 200
    assert c.get("/health").json()["busy"]["running"] == 0
    assert ask(c, generator="ollama").status_code == 200  # the slot was given back


def test_queued_asks_wait_for_a_slot(make_client, fake_ollama):
    c = make_client(max_concurrent_llm=1, max_queued=1)
    c.get("/health")
    fake_ollama.reply = CITED_REPLY
    fake_ollama.piece_delay = 0.05
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(ask(c, generator="ollama"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [r.status_code for r in results] == [200, 200]


def test_streaming_releases_its_slot(make_client, fake_ollama):
    c = make_client(max_concurrent_llm=1, max_queued=0)
    fake_ollama.reply = CITED_REPLY
    for _ in range(3):
        r, events = ask_stream(c)
        assert events[-1][0] == "done"
    fake_ollama.mode = "stream_error"
    ask_stream(c, generator="ollama")
    fake_ollama.mode = None
    assert c.get("/health").json()["busy"] == {"running": 0, "waiting": 0, "max_concurrent": 1, "max_queued": 0}


# ============================================================================ errors from the api_runtime

def test_index_errors_map_to_503(client, api_runtime, monkeypatch):
    from rag.errors import IndexNotFound

    def missing(*a, **k):
        raise IndexNotFound("no index in 'x': build it with `rag index`")

    monkeypatch.setattr(api_runtime.retriever, "search", missing)
    r = client.get("/api/search", params={"q": QUESTION})
    assert r.status_code == 503 and "rag index" in r.json()["detail"]


def test_invalid_query_from_the_core_is_422(client, api_runtime, monkeypatch):
    from rag.errors import InvalidQuery

    def bad(*a, **k):
        raise InvalidQuery("that question cannot be asked")

    monkeypatch.setattr(api_runtime.retriever, "search", bad)
    r = client.get("/api/search", params={"q": QUESTION})
    assert r.status_code == 422 and r.json()["detail"] == "that question cannot be asked"


# ============================================================================ /api/reindex

def test_reindex_is_off_without_an_api_key(client):
    r = client.post("/api/reindex")
    assert r.status_code == 403
    assert "RAG_API_KEY" in r.json()["detail"]


@pytest.fixture
def own_runtime(api_runtime: Runtime, tmp_path: Path) -> Runtime:
    """A copy of the module's data and index (so re-indexing can change them), same embedder."""
    data = copy_data(tmp_path / "data")
    shutil.copytree(api_runtime.settings.index_dir, tmp_path / "index")
    settings = api_runtime.settings.model_copy(update={"data_dir": data, "index_dir": tmp_path / "index"})
    return open_runtime(settings, embedder=api_runtime.embedder)


def test_reindex_needs_the_right_key(make_client, own_runtime):
    c = make_client(own_runtime, api_key="geheim-123")
    assert c.post("/api/reindex").status_code == 401
    r = c.post("/api/reindex", headers={"Authorization": "Bearer fout"})
    assert r.status_code == 401 and "API key" in r.json()["detail"]
    assert c.post("/api/reindex", headers={"X-API-Key": "fout"}).status_code == 401


def test_reindex_rebuilds_and_swaps_the_index_in(make_client, own_runtime):
    c = make_client(own_runtime, api_key="geheim-123")
    data = Path(own_runtime.settings.data_dir)
    (data / "11-nieuw-artikel.md").write_text(
        "# Pyongyang opent een pinguïnzoo\n\nDe hoofdstad van Noord-Korea heeft een nieuwe dierentuin met "
        "keizerspinguïns geopend, meldt het staatspersbureau.\n", "utf-8")
    (data / "05-eerste-toeristen-sinds-2020.md").unlink()
    before = c.get("/health").json()
    r = c.post("/api/reindex", headers={"Authorization": "Bearer geheim-123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["documents"] == before["documents"]  # one added, one removed
    assert body["report"]["added"] and body["report"]["removed"]
    assert body["report"]["embedded_chunks"] < before["chunks"]  # incremental
    assert c.get("/api/documents/11-nieuw-artikel").status_code == 200
    assert c.get("/api/documents/05-eerste-toeristen-sinds-2020").status_code == 404
    hits = c.get("/api/search", params={"q": "pinguïns dierentuin", "k": 1}).json()["results"]
    assert hits[0]["doc_id"] == "11-nieuw-artikel"
    # the X-API-Key header works too; nothing changed now
    r = c.post("/api/reindex", headers={"X-API-Key": "geheim-123"})
    assert r.status_code == 200 and r.json()["report"]["wrote"] is False


# ============================================================================ real server: streaming over the wire

@pytest.fixture
def live_server(api_runtime: Runtime, fake_ollama):
    """``live_server(**settings overrides)`` -> base URL of the app served by uvicorn in a thread."""
    import uvicorn

    from tests.api_fixtures import free_port

    servers = []

    def start(**overrides) -> str:
        settings = api_runtime.settings.model_copy(update={"ollama_host": fake_ollama.url, "llm_probe_timeout": 1.0,
                                                           **overrides})
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings, runtime=api_runtime), host="127.0.0.1",
                                               port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        until(lambda: server.started, what="uvicorn to start")
        return f"http://127.0.0.1:{port}"

    yield start
    fake_ollama.reset()
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.xfail(strict=False, reason=(
    "known issue: with the current uvicorn/starlette, a streamed answer whose client stops reading (but stays "
    "connected) is closed server-side and its LLM slot freed ~0.4 s later, so the second ask is admitted instead "
    "of getting 503; it fails the same way on 5be8ff5 with today's packages (see the closing note)"))
def test_stream_arrives_piece_by_piece_and_a_dropped_client_frees_its_slot(live_server, fake_ollama):
    url = live_server(max_concurrent_llm=1, max_queued=0)
    httpx.get(url + "/health")  # Ollama status cached while the fake is fast
    fake_ollama.reply = "Jihyun Park is een Noord-Koreaanse vluchteling" + " en activist" * 40 + " [1]."
    fake_ollama.piece_delay = 0.1  # ~8 s for the whole answer
    t0 = time.monotonic()
    names = []
    with httpx.stream("POST", url + "/api/ask", json={"question": QUESTION, "stream": True, "generator": "ollama"},
                      timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            if names.count("token") >= 3:
                break
        assert time.monotonic() - t0 < 4.0  # the first pieces came long before the answer was complete
        assert names[0] == "sources"
        # while the answer streams, /health answers at once and shows the running ask
        t1 = time.monotonic()
        h = httpx.get(url + "/health", timeout=5).json()
        assert time.monotonic() - t1 < 0.5
        assert h["busy"]["running"] == 1
        assert httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=10).status_code == 503
    # the client went away half-way: the server stops generating and gives the slot back
    t2 = time.monotonic()
    until(lambda: httpx.get(url + "/health").json()["busy"]["running"] == 0, timeout=10,
               what="the slot to be released")
    assert time.monotonic() - t2 < 2.0
    n_chat = len(fake_ollama.chat_requests)
    time.sleep(0.3)
    assert len(fake_ollama.chat_requests) == n_chat
    fake_ollama.piece_delay = 0.0
    fake_ollama.reply = CITED_REPLY
    r = httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=30)
    assert r.status_code == 200 and r.json()["answer"]


# ============================================================================ hostile input (issue 12, API side)

def test_unknown_host_is_refused(client):
    r = client.get("/api/documents", headers={"Host": "attacker.example"})
    assert r.status_code == 400
    # JSON like every other error (Starlette's own check answers in plain text)
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "InvalidHost" and "attacker.example" in r.json()["detail"]
    v1 = client.post("/v1/chat/completions", headers={"Host": "attacker.example"}, json={"model": "rag", "messages": []})
    assert v1.status_code == 400 and v1.json()["error"]["code"] == "invalid_host"  # OpenAI's shape on /v1
    assert client.get("/api/documents", headers={"Host": "a.localhost.example"}).status_code == 400
    assert client.get("/api/documents", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/api/documents", headers={"Host": "127.0.0.1"}).status_code == 200


def test_default_hosts_are_local_only():
    from rag.config import Settings

    hosts = Settings().trusted_hosts()
    assert {"localhost", "127.0.0.1"} <= set(hosts) and "testserver" not in hosts
    assert "rag.lan" in Settings(allowed_hosts="rag.lan, other.lan").trusted_hosts()


@pytest.mark.parametrize("body", [
    b'{"question": "Wie is \\ud800 Kim?"}',
    b'{"question": "Wie is \\ud800 Kim?", "stream": true}',
    b'{"question": "Wie is \\ud800 Kim?", "generator": "extractive", "mode": "bm25"}',
    b'{"question": "Wie is Kim?", "history": [{"role": "user", "content": "\\udfff"}]}',
])
def test_lone_surrogates_are_422(client, body):
    r = client.post("/api/ask", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "surrogate" in r.json()["detail"] or "unicode" in r.json()["detail"].lower()


def test_lone_surrogate_in_a_search_is_422(client):
    r = client.get("/api/search?q=Kim%ED%A0%80")  # the UTF-8-style bytes of \ud800
    assert r.status_code in (200, 422)  # decoded with replacement characters, or refused: never 500
    assert client.get("/health").status_code == 200


def test_history_of_nulls_is_one_clear_422(client):
    r = client.post("/api/ask", json={"question": QUESTION, "history": [None, None]})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.count("history") == 1 and "role" in detail and "JSON object" not in detail, detail


def test_search_concurrency_is_capped_with_503(make_client, api_runtime, monkeypatch):
    c = make_client(max_concurrent_search=1)
    release = threading.Event()
    real = api_runtime.retriever.search
    monkeypatch.setattr(api_runtime.retriever, "search", lambda *a, **k: (release.wait(20), real(*a, **k))[1])
    first: list = []
    t = threading.Thread(target=lambda: first.append(c.get("/api/search", params={"q": QUESTION})))
    t.start()
    try:
        until(lambda: c.get("/health").json()["searches"]["running"] == 1, what="the first search to start")
        r = c.get("/api/search", params={"q": QUESTION})
        assert r.status_code == 503 and "busy" in r.json()["detail"] and r.headers["Retry-After"]
    finally:
        release.set()
        t.join(20)
    assert first[0].status_code == 200
    assert c.get("/api/search", params={"q": QUESTION}).status_code == 200


def test_extractive_asks_share_the_search_cap_and_health_still_answers(make_client, api_runtime, monkeypatch):
    """An extractive answer is all CPU: it is admitted like a search (503 beyond the cap) and runs on the
    search threads, so /health does not wait behind it."""
    c = make_client(max_concurrent_search=1)
    release = threading.Event()
    real = api_runtime.retriever.search
    monkeypatch.setattr(api_runtime.retriever, "search", lambda *a, **k: (release.wait(20), real(*a, **k))[1])
    first: list = []
    body = {"question": QUESTION, "generator": "extractive"}
    t = threading.Thread(target=lambda: first.append(c.post("/api/ask", json=body)))
    t.start()
    try:
        until(lambda: c.get("/health").json()["searches"]["running"] == 1, what="the first ask to start")
        r = c.post("/api/ask", json=body)
        assert r.status_code == 503 and "busy" in r.json()["detail"] and r.headers["Retry-After"]
        r = c.get("/api/search", params={"q": QUESTION})  # the one slot is the ask's
        assert r.status_code == 503
        assert c.get("/health").status_code == 200
    finally:
        release.set()
        t.join(20)
    assert first[0].status_code == 200 and first[0].json()["generator"] == "extractive"
    assert c.get("/health").json()["searches"]["running"] == 0


def test_a_departed_client_frees_its_llm_slot(live_server, fake_ollama):
    url = live_server(max_concurrent_llm=1, max_queued=0, llm_probe_timeout=1.0)
    fake_ollama.mode = "slow"  # the chat request hangs before its first byte
    fake_ollama.slow_seconds = 60
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/api/ask", json={"question": QUESTION, "generator": "ollama"}, timeout=1.0)
    # the client left: the server notices within a second or two and gives the slot back
    until(lambda: httpx.get(url + "/health", timeout=5).json()["busy"]["running"] == 0, timeout=5,
               what="the slot to be freed")
    fake_ollama.reset()


def test_a_departed_client_stops_its_llm_stream(live_server, fake_ollama):
    url = live_server(max_concurrent_llm=1, max_queued=0)
    httpx.get(url + "/health")
    fake_ollama.reply = "Jihyun Park is een Noord-Koreaanse vluchteling" + " en activist" * 60 + " [1]."
    fake_ollama.piece_delay = 0.1  # ~12 s for the whole answer
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/api/ask", json={"question": QUESTION, "generator": "ollama"}, timeout=1.5)
    until(lambda: httpx.get(url + "/health", timeout=5).json()["busy"]["running"] == 0, timeout=5,
               what="the slot to be freed")
    # a new ask gets the slot at once
    fake_ollama.piece_delay = 0.0
    fake_ollama.reply = CITED_REPLY
    r = httpx.post(url + "/api/ask", json={"question": QUESTION, "generator": "ollama"}, timeout=30)
    assert r.status_code == 200 and r.json()["generator"] == "ollama"


# ============================================================================ many threads at once

def test_search_and_ask_from_32_threads_match_serial_results(live_server, fake_ollama):
    """The real model, FAISS and BM25 shared by the server's threads: concurrent answers equal serial ones."""
    from concurrent.futures import ThreadPoolExecutor

    url = live_server(max_concurrent_search=64, max_concurrent_llm=64, max_queued=64)
    questions = [QUESTION, "Hoeveel gewonden vielen er bij de aanval op Charkiv?",
                 "Wie is de dochter van Kim Jong-un?", "Wat zegt Remco Breuker over Noord-Korea?"]

    def search(q: str):
        r = httpx.get(url + "/api/search", params={"q": q, "k": 5}, timeout=120)
        assert r.status_code == 200, r.text
        return [(h["chunk_id"], round(h["score"], 4)) for h in r.json()["results"]]

    def answer(q: str):
        r = httpx.post(url + "/api/ask", json={"question": q, "generator": "extractive"}, timeout=120)
        assert r.status_code == 200, r.text
        a = r.json()
        return a["answer"], [c["chunk_id"] for c in a["citations"]]

    serial = {("s", q): search(q) for q in questions} | {("a", q): answer(q) for q in questions}
    jobs = [(kind, q) for _ in range(4) for kind in ("s", "a") for q in questions]  # 32 requests
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda job: (job, (search if job[0] == "s" else answer)(job[1])), jobs))
    for job, got in results:
        assert got == serial[job], job


def test_server_closes_a_connection_whose_headers_never_end():
    import socket

    import uvicorn

    from api.server import timed_protocol
    from tests.api_fixtures import free_port

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=timed_protocol(1.0),
                                          log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, what="uvicorn to start")
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # ... and never the blank line
            s.settimeout(15)
            got = b"".join(iter(lambda: s.recv(4096), b""))  # closed by the server, not by our 15 s timeout
            assert got.startswith(b"HTTP/1.1 408 "), got  # saying why (issue 37 item 7)
            assert b'"code": "timeout"' in got and b"within 1 s" in got
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            s.settimeout(15)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)
