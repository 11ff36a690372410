"""rag/llms/ollama.py against the fake Ollama server, through the real ``ollama`` client."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest

from rag.config import Settings
from rag.errors import LLMError, LLMModelNotFound, LLMStreamBroken, LLMTimeout, LLMUnavailable
from rag.llms.base import LLM, LLMStatus
from rag.llms.ollama import OllamaLLM
from rag.llms.tokens import count_message_tokens, count_tokens
from tests.api_fixtures import until
from tests.fake_ollama import DEFAULT_MODEL, FakeOllama

MESSAGES = [
    {"role": "system", "content": "Antwoord alleen op basis van de bronnen."},
    {"role": "user", "content": "Wat is de hoofdstad van Nederland?"},
]
TIMEOUT = 0.6  # seconds; the "slow" mode waits far longer
MARGIN = 2.0


def make_llm(url: str, **kw) -> OllamaLLM:
    args = dict(
        host=url,
        model=DEFAULT_MODEL,
        timeout=TIMEOUT,
        probe_timeout=0.5,
        num_ctx=4096,
        keep_alive="7m",
        temperature=0.2,
        max_tokens=300,
    )
    args.update(kw)
    return OllamaLLM(**args)


@pytest.fixture
def llm(fake_ollama: FakeOllama):
    with make_llm(fake_ollama.url) as client:
        yield client


def timed(fn):
    start = time.monotonic()
    try:
        fn()
    finally:
        elapsed = time.monotonic() - start
    return elapsed


# ------------------------------------------------------------------ happy path
def test_satisfies_protocol(llm):
    assert isinstance(llm, LLM)
    assert llm.name == "ollama" and llm.model == DEFAULT_MODEL


def test_chat_returns_scripted_text(fake_ollama, llm):
    fake_ollama.reply = "Amsterdam is de hoofdstad."
    assert llm.chat(MESSAGES) == "Amsterdam is de hoofdstad."
    assert fake_ollama.last_chat["stream"] is False


def test_stream_chat_yields_pieces(fake_ollama, llm):
    fake_ollama.reply = "Amsterdam is de hoofdstad van Nederland."
    pieces = list(llm.stream_chat(MESSAGES))
    assert len(pieces) > 1
    assert "".join(pieces) == "Amsterdam is de hoofdstad van Nederland."
    assert fake_ollama.last_chat["stream"] is True


def test_explicit_pieces_and_callable_reply(fake_ollama, llm):
    fake_ollama.reply = ["Am", "ster", "dam"]
    assert list(llm.stream_chat(MESSAGES)) == ["Am", "ster", "dam"]

    fake_ollama.reply = lambda body: f"{len(body['messages'])} berichten, ctx {body['options']['num_ctx']}"
    assert llm.chat(MESSAGES) == "2 berichten, ctx 4096"


def test_request_carries_messages_options_and_keep_alive(fake_ollama, llm):
    llm.chat(MESSAGES)
    body = fake_ollama.last_chat
    assert body["model"] == DEFAULT_MODEL
    assert body["messages"] == MESSAGES
    assert body["options"] == {"num_ctx": 4096, "temperature": 0.2, "num_predict": 300}
    assert body["keep_alive"] == "7m"

    list(llm.stream_chat(MESSAGES, num_ctx=2048, max_tokens=50))
    body = fake_ollama.last_chat
    assert body["options"]["num_ctx"] == 2048 and body["options"]["num_predict"] == 50
    assert body["keep_alive"] == "7m"
    assert len(fake_ollama.chat_requests) == 2


def test_from_settings():
    s = Settings(ollama_host="http://127.0.0.1:9", llm_model="llama3", llm_timeout=33, num_ctx=1234, keep_alive="300")
    llm = OllamaLLM.from_settings(s)
    assert (llm.host, llm.model, llm.timeout, llm.num_ctx) == ("http://127.0.0.1:9", "llama3", 33.0, 1234)
    assert llm.keep_alive == 300  # a bare number is seconds for Ollama
    assert llm.max_tokens == s.max_answer_tokens and llm.temperature == s.temperature
    llm.close()


def test_bad_arguments_are_rejected_before_any_request(fake_ollama, llm):
    with pytest.raises(ValueError):
        llm.chat([])
    with pytest.raises(ValueError):
        llm.stream_chat([{"content": "no role"}])
    with pytest.raises(ValueError):
        llm.chat(MESSAGES, num_ctx=0)
    assert fake_ollama.chat_requests == []


def test_context_length(fake_ollama, llm):
    fake_ollama.context_length = 32768
    assert llm.context_length() == 32768


# ---------------------------------------------------------------------- status
def test_status_ok(llm):
    st = llm.status()
    assert isinstance(st, LLMStatus)
    assert st.reachable and st.model_available and st.ok
    assert st.model == DEFAULT_MODEL


def test_status_latest_tag_is_the_same_model(fake_ollama):
    fake_ollama.models = ["llama3:latest", "mistral"]
    for name in ("llama3", "llama3:latest", "mistral:latest"):
        with make_llm(fake_ollama.url, model=name) as llm:
            assert llm.status().model_available, name
    with make_llm(fake_ollama.url, model="llama3:8b") as llm:
        assert not llm.status().model_available


def test_status_model_missing(fake_ollama, llm):
    fake_ollama.mode = "model_missing"
    st = llm.status()
    assert st.reachable and not st.model_available and not st.ok
    assert f"ollama pull {DEFAULT_MODEL}" in st.detail


def test_status_unreachable(dead_ollama_url):
    with make_llm(dead_ollama_url) as llm:
        elapsed = timed(lambda: llm.status())
        st = llm.status()
    assert not st.reachable and not st.model_available
    assert "ollama serve" in st.detail and dead_ollama_url in st.detail
    assert elapsed < 0.5 + MARGIN


def test_status_slow_server_uses_probe_timeout(fake_ollama):
    fake_ollama.mode = "slow"
    with make_llm(fake_ollama.url, timeout=30, probe_timeout=0.3) as llm:
        start = time.monotonic()
        st = llm.status()
        assert time.monotonic() - start < 0.3 + MARGIN
    assert not st.reachable and "0.3 s" in st.detail


@pytest.mark.parametrize("mode", ["http_500", "garbage"])
def test_status_never_raises(fake_ollama, llm, mode):
    fake_ollama.mode = mode
    st = llm.status()
    assert not st.ok and st.detail


def test_status_is_cached(fake_ollama, llm):
    assert llm.status().ok
    fake_ollama.mode = "model_missing"
    assert llm.status().ok  # within the TTL: no new probe
    assert not llm.status(refresh=True).model_available
    assert sum(r.path == "/api/tags" for r in fake_ollama.requests) == 2


def test_status_cache_dropped_when_chat_finds_model_missing(fake_ollama, llm):
    assert llm.status().ok
    fake_ollama.mode = "model_missing"
    with pytest.raises(LLMModelNotFound):
        llm.chat(MESSAGES)
    assert not llm.status().model_available


# -------------------------------------------------------------- failure modes
def test_model_missing(fake_ollama, llm):
    fake_ollama.mode = "model_missing"
    with pytest.raises(LLMModelNotFound, match=f"ollama pull {DEFAULT_MODEL}"):
        llm.chat(MESSAGES)
    with pytest.raises(LLMModelNotFound, match=f"ollama pull {DEFAULT_MODEL}"):
        list(llm.stream_chat(MESSAGES))


def test_unreachable(dead_ollama_url):
    with make_llm(dead_ollama_url) as llm:
        with pytest.raises(LLMUnavailable, match="ollama serve") as info:
            llm.chat(MESSAGES)
        assert dead_ollama_url in str(info.value)
        with pytest.raises(LLMUnavailable, match="ollama serve"):
            list(llm.stream_chat(MESSAGES))


def test_stopped_server_refuses(fake_ollama, llm):
    assert llm.chat(MESSAGES)  # a pooled keep-alive connection now exists
    fake_ollama.stop()
    with pytest.raises(LLMUnavailable):
        llm.chat(MESSAGES)
    assert not llm.status(refresh=True).reachable


@pytest.mark.parametrize("streaming", [False, True])
def test_slow_server_times_out_in_time(fake_ollama, llm, streaming):
    fake_ollama.mode = "slow"
    call = (lambda: list(llm.stream_chat(MESSAGES))) if streaming else (lambda: llm.chat(MESSAGES))
    start = time.monotonic()
    with pytest.raises(LLMTimeout, match=f"did not answer within {TIMEOUT:g} s") as info:
        call()
    elapsed = time.monotonic() - start
    assert "Loading a model can take a while" in str(info.value)  # nothing arrived: maybe the model is loading
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + MARGIN


def test_stream_total_time_is_bounded(fake_ollama):
    """Pieces keep coming, but the whole answer takes longer than the timeout."""
    fake_ollama.reply = " ".join(["woord"] * 40)
    fake_ollama.piece_delay = 0.05  # 40 pieces = 2 s
    with make_llm(fake_ollama.url, timeout=0.5) as llm:
        got = []
        start = time.monotonic()
        with pytest.raises(LLMTimeout):
            for piece in llm.stream_chat(MESSAGES):
                got.append(piece)
        assert time.monotonic() - start < 0.5 + MARGIN
    assert 0 < len(got) < 40


def test_break_stream_after_first_pieces(fake_ollama, llm):
    fake_ollama.reply = "een twee drie vier vijf zes"
    fake_ollama.mode = "break_stream"
    fake_ollama.break_after = 2
    got = []
    start = time.monotonic()
    with pytest.raises(LLMStreamBroken):
        for piece in llm.stream_chat(MESSAGES):
            got.append(piece)
    assert got == ["een", " twee"]
    assert time.monotonic() - start < TIMEOUT + MARGIN


def test_break_stream_non_streaming(fake_ollama, llm):
    fake_ollama.mode = "break_stream"
    with pytest.raises(LLMStreamBroken):
        llm.chat(MESSAGES)


def test_error_line_inside_stream(fake_ollama, llm):
    fake_ollama.mode = "stream_error"
    fake_ollama.reply = "een twee drie vier"
    got = []
    with pytest.raises(LLMStreamBroken, match="runner process has terminated"):
        for piece in llm.stream_chat(MESSAGES):
            got.append(piece)
    assert got == ["een", " twee"]


def test_stream_without_done_line(fake_ollama, llm, monkeypatch):
    """A stream that ends cleanly but never says done is still broken."""
    import tests.fake_ollama as fo

    original = fo._Handler._chunk

    def drop_done_line(self, data: bytes) -> None:
        if b'"done": true' not in data:
            original(self, data)

    monkeypatch.setattr(fo._Handler, "_chunk", drop_done_line)
    fake_ollama.reply = "een twee drie"
    got = []
    with pytest.raises(LLMStreamBroken, match="after 3 pieces"):
        for piece in llm.stream_chat(MESSAGES):
            got.append(piece)
    assert "".join(got) == "een twee drie"


@pytest.mark.parametrize("streaming", [False, True])
def test_http_500(fake_ollama, llm, streaming):
    fake_ollama.mode = "http_500"
    fake_ollama.error_message = "out of memory"
    call = (lambda: list(llm.stream_chat(MESSAGES))) if streaming else (lambda: llm.chat(MESSAGES))
    with pytest.raises(LLMError, match="out of memory") as info:
        call()
    assert type(info.value) is LLMError


@pytest.mark.parametrize("streaming", [False, True])
def test_garbage(fake_ollama, llm, streaming):
    fake_ollama.mode = "garbage"
    call = (lambda: list(llm.stream_chat(MESSAGES))) if streaming else (lambda: llm.chat(MESSAGES))
    with pytest.raises(LLMStreamBroken):
        call()


def test_no_raw_library_exception_escapes(fake_ollama, llm, dead_ollama_url):
    for mode in (None, "model_missing", "break_stream", "http_500", "garbage", "stream_error", "broken",
                 "stream_garbage"):
        fake_ollama.mode = mode
        for call in (lambda: llm.chat(MESSAGES), lambda: list(llm.stream_chat(MESSAGES))):
            try:
                call()
            except LLMError:
                pass


def test_closing_stream_early_releases_connection(fake_ollama, llm):
    fake_ollama.reply = " ".join(["woord"] * 50)
    stream = llm.stream_chat(MESSAGES)
    assert next(stream) == "woord"
    stream.close()
    assert llm.chat(MESSAGES)  # the client still works


# ------------------------------------------------ stalls, drops and departed askers (issue 12)
def test_stall_mid_answer_says_what_arrived(fake_ollama, llm):
    """Issue 12 item 8: after three pieces the message must not blame a loading model."""
    fake_ollama.mode = "stall"
    fake_ollama.reply = "een twee drie vier vijf"
    fake_ollama.break_after = 3
    got = []
    with pytest.raises(LLMTimeout) as info:
        for piece in llm.stream_chat(MESSAGES):
            got.append(piece)
    assert got == ["een", " twee", " drie"]
    message = str(info.value)
    assert "stopped after 3 pieces (13 characters) of the answer and sent nothing more for" in message
    assert "did not answer" not in message and "Loading a model" not in message


def test_stream_total_time_message_counts_the_pieces(fake_ollama):
    fake_ollama.reply = " ".join(["woord"] * 40)
    fake_ollama.piece_delay = 0.05
    with make_llm(fake_ollama.url, timeout=0.5) as llm:
        stream = llm.stream_chat(MESSAGES)
        with pytest.raises(LLMTimeout, match=r"did not finish the answer within 0.5 s") as info:
            list(stream)
    assert f"{stream.progress} had arrived" in str(info.value) and stream.progress.pieces > 0


@pytest.mark.parametrize("streaming", [False, True])
def test_broken_mode_is_a_dropped_connection(fake_ollama, streaming):
    """The fake's "broken" mode resets the connection before any byte: a clear error, not a timeout."""
    fake_ollama.mode = "broken"
    with make_llm(fake_ollama.url, timeout=30) as llm:  # a stall would end in LLMTimeout after 30 s
        call = (lambda: list(llm.stream_chat(MESSAGES))) if streaming else (lambda: llm.chat(MESSAGES))
        with pytest.raises(LLMStreamBroken, match="dropped"):
            call()
    assert fake_ollama.chat_requests  # the request did arrive


def test_garbage_after_pieces(fake_ollama, llm):
    fake_ollama.mode = "stream_garbage"
    fake_ollama.reply = "een twee drie"
    got = []
    with pytest.raises(LLMStreamBroken, match=r"not valid Ollama JSON after 2 pieces \(8 characters\)"):
        for piece in llm.stream_chat(MESSAGES):
            got.append(piece)
    assert got == ["een", " twee"]
    with pytest.raises(LLMStreamBroken, match="not valid Ollama JSON"):
        llm.chat(MESSAGES)


def test_closing_mid_stream_drops_the_connection(fake_ollama):
    """Closing the iterator (same thread) closes the HTTP response: Ollama sees the client leave."""
    fake_ollama.mode = "stall"  # two pieces, then the "model" is busy for 30 s
    fake_ollama.reply = "een twee drie vier"
    with make_llm(fake_ollama.url, timeout=30) as llm:
        stream = llm.stream_chat(MESSAGES)
        assert [next(stream), next(stream)] == ["een", " twee"]
        assert fake_ollama.disconnects == []
        stream.close()
        assert fake_ollama.wait_for_disconnects(1), "the fake Ollama did not see the connection drop"
        assert fake_ollama.disconnects == ["/api/chat"]
        with pytest.raises(StopIteration):
            next(stream)
        fake_ollama.mode = None
        assert llm.chat(MESSAGES)  # the client still works


@pytest.mark.parametrize("mode, arrived", [("slow", []), ("stall", ["een", " twee"])])
def test_close_from_another_thread_ends_a_blocked_next(fake_ollama, mode, arrived):
    """The asker leaves while a worker thread waits for the first byte ("slow") or for the next piece
    ("stall"): close() from another thread ends the worker's iteration and Ollama sees the drop."""
    fake_ollama.mode = mode
    fake_ollama.reply = "een twee drie vier"
    outcome: dict = {}
    with make_llm(fake_ollama.url, timeout=30) as llm:
        stream = llm.stream_chat(MESSAGES)

        def worker():
            got = []
            try:
                for piece in stream:
                    got.append(piece)
            except BaseException as exc:  # noqa: BLE001 -- recorded for the assertion below
                outcome["error"] = exc
            outcome["pieces"] = got

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        until(lambda: fake_ollama.chat_requests and stream.progress.pieces == len(arrived), "the request")
        # (a slow server also keeps the capabilities look-up (/api/show) waiting past the probe timeout)
        assert "/api/chat" not in fake_ollama.disconnects
        stream.close()
        thread.join(10)
        assert not thread.is_alive(), "next() was still blocked after close()"
        assert outcome == {"pieces": arrived}
        until(lambda: "/api/chat" in fake_ollama.disconnects, "Ollama to see the client leave")
        assert fake_ollama.disconnects.count("/api/chat") == 1
        assert stream.closed


def test_close_before_the_first_next_sends_nothing(fake_ollama, llm):
    stream = llm.stream_chat(MESSAGES)
    stream.close()
    assert list(stream) == []
    assert fake_ollama.chat_requests == []


def test_concurrent_requests(fake_ollama, llm):
    fake_ollama.reply = lambda body: body["messages"][-1]["content"].upper()
    results = {}

    def ask(i):
        results[i] = "".join(llm.stream_chat([{"role": "user", "content": f"vraag {i}"}]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: f"VRAAG {i}" for i in range(6)}


def test_num_predict_caps_reply(fake_ollama, llm):
    fake_ollama.reply = "een twee drie vier vijf"
    assert llm.chat(MESSAGES, max_tokens=2) == "een twee"


# ----------------------------------------------------------------- fake server
def test_fake_server_speaks_ollama_protocol(fake_ollama):
    with httpx.Client(base_url=fake_ollama.url, timeout=5) as http:
        assert http.get("/api/version").json() == {"version": "0.5.7"}
        tags = http.get("/api/tags").json()["models"]
        assert tags[0]["name"] == DEFAULT_MODEL and tags[0]["details"]["family"] == "qwen2"
        show = http.post("/api/show", json={"name": DEFAULT_MODEL}).json()
        assert show["model_info"]["qwen2.context_length"] == 32768
        missing = http.post("/api/show", json={"model": "x"})
        assert missing.status_code == 404 and missing.json() == {"error": "model 'x' not found"}
        chat = http.post("/api/chat", json={"model": "x", "messages": []})
        assert chat.status_code == 404
        assert chat.json() == {"error": 'model "x" not found, try pulling it first'}
        fake_ollama.reply = "a b"
        lines = http.post(
            "/api/chat", json={"model": DEFAULT_MODEL, "messages": MESSAGES}
        ).text.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["message"]["content"] for p in parsed] == ["a", " b", ""]
    assert [p["done"] for p in parsed] == [False, False, True]
    assert parsed[-1]["done_reason"] == "stop" and parsed[-1]["eval_count"] == 2
    assert "/api/show" in [r.path for r in fake_ollama.requests]


def test_fake_server_rejects_unknown_mode(fake_ollama):
    with pytest.raises(ValueError):
        fake_ollama.mode = "slooow"


# --------------------------------------------------------------------- tokens
def test_count_tokens_is_a_conservative_estimate():
    assert count_tokens("") == 0
    text = "De gemeenteraad van Amsterdam heeft dinsdag ingestemd met het nieuwe bestemmingsplan."
    # real BPE tokenizers give ~18-22 tokens for this sentence
    assert count_tokens(text) >= 25
    assert count_tokens("2024-05-17") >= 8  # digits are tokens of their own
    assert count_tokens("a " * 100) >= 160
    assert count_message_tokens(MESSAGES) > count_tokens(MESSAGES[0]["content"]) + count_tokens(MESSAGES[1]["content"])


# ---------------------------------------------------------------- integration
def _real_ollama_host() -> str:
    return os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"


@pytest.mark.integration
def test_real_ollama():
    llm = OllamaLLM(host=_real_ollama_host(), model=os.environ.get("RAG_LLM_MODEL", DEFAULT_MODEL), probe_timeout=1.0)
    st = llm.status()
    if not st.reachable:
        pytest.skip(f"no Ollama answers: {st.detail}")
    if not st.model_available:
        pytest.skip(st.detail)
    messages = [{"role": "user", "content": "Antwoord met precies één woord: wat is de hoofdstad van Frankrijk?"}]
    answer = llm.chat(messages, max_tokens=20)
    assert "parijs" in answer.lower() or "paris" in answer.lower()
    pieces = list(llm.stream_chat(messages, max_tokens=20))
    assert pieces and "".join(pieces).strip()
    llm.close()
