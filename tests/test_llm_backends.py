"""The fault tests, run against both LLM backends on the wire (issue 23): Ollama's native API
(tests/fake_ollama.py, official ``ollama`` client) and an OpenAI-compatible server
(tests/fake_openai.py, official ``openai`` client). Every failure becomes the same project error."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from rag.config import get_settings
from rag.errors import LLMError, LLMModelNotFound, LLMStreamBroken, LLMTimeout, LLMUnavailable
from rag.llms.base import LLM
from rag.llms.ollama import OllamaLLM
from rag.llms.registry import backend_name, make_llm
from rag.llms.openai import OpenAILLM
from tests.fake_ollama import DEFAULT_MODEL, closed_port_url

MESSAGES = [
    {"role": "system", "content": "Antwoord alleen op basis van de bronnen."},
    {"role": "user", "content": "Wat is de hoofdstad van Nederland?"},
]
TIMEOUT = 0.8


@dataclass
class Backend:
    name: str
    fake: Any
    make: Callable[..., Any]  # make(url=None, **kw) -> adapter
    url: str
    missing_hint: str  # what the model-missing message tells the user to do
    start_hint: str

    def dead(self, **kw):
        return self.make(url=closed_port_url() + ("/v1" if self.name == "openai" else ""), **kw)


@pytest.fixture(params=["ollama", "openai"])
def backend(request) -> Backend:
    if request.param == "ollama":
        fake = request.getfixturevalue("fake_ollama")

        def make(url=None, **kw):
            args = dict(host=url or fake.url, model=DEFAULT_MODEL, timeout=TIMEOUT, probe_timeout=0.5, max_tokens=300)
            return OllamaLLM(**{**args, **kw})

        return Backend("ollama", fake, make, fake.url, "ollama pull", "ollama serve")
    fake = request.getfixturevalue("fake_openai")

    def make(url=None, **kw):
        args = dict(base_url=url or fake.base_url, model=DEFAULT_MODEL, timeout=TIMEOUT, probe_timeout=0.5,
                    max_tokens=300)
        return OpenAILLM(**{**args, **kw})

    return Backend("openai", fake, make, fake.base_url, "RAG_LLM_MODEL", "RAG_OPENAI_BASE_URL")


@pytest.fixture
def llm(backend):
    with backend.make() as adapter:
        yield adapter


def calls(llm):
    return {"chat": lambda: llm.chat(MESSAGES), "stream": lambda: list(llm.stream_chat(MESSAGES))}


def collect(stream, got: list) -> None:
    for piece in stream:
        got.append(piece)


# ------------------------------------------------------------------ happy path and status
def test_protocol_name_and_answer(backend, llm):
    assert isinstance(llm, LLM) and llm.name == backend.name
    backend.fake.reply = "Amsterdam is de hoofdstad [1]."
    assert llm.chat(MESSAGES) == "Amsterdam is de hoofdstad [1]."
    stream = llm.stream_chat(MESSAGES)
    assert list(stream) == ["Amsterdam", " is", " de", " hoofdstad", " [1]."]
    assert stream.progress.pieces == 5
    assert backend.fake.last_chat["messages"] == MESSAGES


def test_token_limit_is_sent(backend, llm):
    backend.fake.reply = "een twee drie vier vijf"
    assert list(llm.stream_chat(MESSAGES, max_tokens=2)) == ["een", " twee"]


def test_status(backend, llm):
    st = llm.status()
    assert st.ok and DEFAULT_MODEL in st.detail
    backend.fake.mode = "model_missing"
    st = llm.status(refresh=True)
    assert st.reachable and not st.model_available and backend.missing_hint in st.detail
    with backend.dead() as dead:
        st = dead.status()
        assert not st.reachable and backend.start_hint in st.detail


@pytest.mark.parametrize("mode", ["http_500", "garbage", "broken", "slow"])
def test_status_never_raises(backend, llm, mode):
    backend.fake.mode = mode
    assert not llm.status(refresh=True).ok


# -------------------------------------------------------------- failure modes
@pytest.mark.parametrize("how", ["chat", "stream"])
def test_model_missing(backend, llm, how):
    backend.fake.mode = "model_missing"
    with pytest.raises(LLMModelNotFound, match=backend.missing_hint):
        calls(llm)[how]()


@pytest.mark.parametrize("how", ["chat", "stream"])
def test_unreachable(backend, how):
    with backend.dead() as llm:
        with pytest.raises(LLMUnavailable, match=backend.start_hint):
            calls(llm)[how]()


def test_stopped_server_refuses(backend, llm):
    assert llm.chat(MESSAGES)  # a pooled keep-alive connection now exists
    backend.fake.stop()
    with pytest.raises(LLMUnavailable):
        llm.chat(MESSAGES)
    assert not llm.status(refresh=True).reachable


@pytest.mark.parametrize("how", ["chat", "stream"])
def test_silent_server_times_out(backend, llm, how):
    backend.fake.mode = "slow"
    with pytest.raises(LLMTimeout, match=f"did not answer within {TIMEOUT:g} s") as info:
        calls(llm)[how]()
    assert "Loading a model can take a while" in str(info.value)


def test_break_stream_after_first_pieces(backend, llm):
    backend.fake.reply = "een twee drie vier vijf zes"
    backend.fake.mode = "break_stream"
    got: list = []
    with pytest.raises(LLMStreamBroken, match="after 2 pieces"):
        collect(llm.stream_chat(MESSAGES), got)
    assert got == ["een", " twee"]


@pytest.mark.parametrize("mode", ["break_stream", "garbage", "broken", "stream_garbage"])
def test_broken_answers_are_stream_broken(backend, llm, mode):
    backend.fake.mode = mode
    for how, call in calls(llm).items():
        with pytest.raises(LLMStreamBroken):
            call()


def test_error_inside_stream(backend, llm):
    backend.fake.mode = "stream_error"
    backend.fake.error_message = "llama runner process has terminated"
    got: list = []
    with pytest.raises(LLMStreamBroken, match="runner process has terminated"):
        collect(llm.stream_chat(MESSAGES), got)
    assert got == ["een", " twee"] or len(got) == 2


@pytest.mark.parametrize("how", ["chat", "stream"])
def test_http_500_is_a_plain_llm_error(backend, llm, how):
    backend.fake.mode = "http_500"
    backend.fake.error_message = "out of memory"
    with pytest.raises(LLMError, match="out of memory") as info:
        calls(llm)[how]()
    assert type(info.value) is LLMError


def test_no_raw_library_exception_escapes(backend, llm):
    for mode in (None, "model_missing", "break_stream", "http_500", "garbage", "stream_error", "broken",
                 "stream_garbage"):
        backend.fake.mode = mode
        for call in calls(llm).values():
            try:
                call()
            except LLMError:
                pass


def test_stall_mid_answer_says_what_arrived(backend, llm):
    backend.fake.mode = "stall"
    backend.fake.reply = "een twee drie vier vijf"
    backend.fake.break_after = 3
    got: list = []
    with pytest.raises(LLMTimeout) as info:
        collect(llm.stream_chat(MESSAGES), got)
    assert got == ["een", " twee", " drie"]
    message = str(info.value)
    assert "stopped after 3 pieces (13 characters) of the answer and sent nothing more" in message
    assert "Loading a model" not in message


def test_deadline_holds_while_tokens_keep_dripping(backend):
    """Issue 25 point 5: a token every 0.6 x the limit resets every read timeout; the request must
    still end at the limit: two pieces (at 0 and 0.6 T), not the third at 1.2 T."""
    backend.fake.reply = " ".join(["woord"] * 10)
    backend.fake.piece_delay = TIMEOUT * 0.6
    got: list = []
    with backend.make() as llm:
        stream = llm.stream_chat(MESSAGES)
        with pytest.raises(LLMTimeout, match=f"did not finish the answer within {TIMEOUT:g} s"):
            collect(stream, got)
    assert len(got) == 2 and stream.progress.pieces == 2
    assert backend.fake.wait_for_disconnects(1)  # the connection was cut at the deadline


def test_close_from_another_thread_ends_a_blocked_next(backend):
    backend.fake.mode = "stall"
    backend.fake.reply = "een twee drie vier"
    outcome: dict = {}
    with backend.make(timeout=30) as llm:
        stream = llm.stream_chat(MESSAGES)

        def worker():
            got: list = []
            try:
                collect(stream, got)
            except BaseException as exc:  # noqa: BLE001 -- recorded for the assertion below
                outcome["error"] = exc
            outcome["pieces"] = got

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while stream.progress.pieces < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        stream.close()
        thread.join(10)
        assert not thread.is_alive(), "next() was still blocked after close()"
        assert outcome == {"pieces": ["een", " twee"]}
        assert backend.fake.wait_for_disconnects(1)
        assert backend.fake.chat_path in backend.fake.disconnects


def test_close_before_the_first_next_sends_nothing(backend, llm):
    llm.stream_chat(MESSAGES).close()
    assert backend.fake.chat_requests == []


def test_concurrent_requests(backend, llm):
    backend.fake.reply = lambda body: body["messages"][-1]["content"]
    results: dict = {}

    def ask(i: int) -> None:
        results[i] = "".join(llm.stream_chat([{"role": "user", "content": f"vraag {i}"}]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: f"vraag {i}" for i in range(6)}


# ------------------------------------------------------------------ thinking, both backends
@pytest.mark.parametrize("how", ["chat", "stream"])
def test_a_thinking_trace_never_reaches_the_answer(backend, how):
    backend.fake.thinking = "Eerst plan ik: zoek de leeftijd in bron 1."
    if backend.name == "ollama":
        backend.fake.capabilities = ["completion", "thinking"]
    backend.fake.reply = "Jihyun Park is 29 [1]."
    with backend.make(think="true") as llm:
        text = "".join(calls(llm)[how]())
    assert text == "Jihyun Park is 29 [1]."


def test_think_tags_in_the_content_are_stripped(backend, llm):
    backend.fake.reply = ["<thi", "nk>plan: bron 1", "</think>\n", "Jihyun Park", " is 29 [1]."]
    assert "".join(llm.stream_chat(MESSAGES)) == "Jihyun Park is 29 [1]."
    assert llm.chat(MESSAGES) == "Jihyun Park is 29 [1]."


def test_openai_sends_thinking_off_by_default(fake_openai):
    with OpenAILLM(fake_openai.base_url, DEFAULT_MODEL, timeout=5) as llm:
        llm.chat(MESSAGES)
        assert fake_openai.last_chat["chat_template_kwargs"] == {"enable_thinking": False}
        assert "reasoning_effort" not in fake_openai.last_chat
        list(llm.stream_chat(MESSAGES))
        assert fake_openai.last_chat["stream_options"] == {"include_usage": True}
    with OpenAILLM(fake_openai.base_url, DEFAULT_MODEL, timeout=5, think="low") as llm:
        llm.chat(MESSAGES)
        assert fake_openai.last_chat["chat_template_kwargs"] == {"enable_thinking": True}
        assert fake_openai.last_chat["reasoning_effort"] == "low"


def test_openai_api_key(fake_openai):
    fake_openai.api_key = "geheim"
    with OpenAILLM(fake_openai.base_url, DEFAULT_MODEL, timeout=5) as llm:
        with pytest.raises(LLMError, match="RAG_OPENAI_API_KEY"):
            llm.chat(MESSAGES)
    with OpenAILLM(fake_openai.base_url, DEFAULT_MODEL, timeout=5, api_key="geheim") as llm:
        assert llm.chat(MESSAGES)


def test_openai_wrong_base_url_says_so(fake_openai):
    with OpenAILLM(fake_openai.url, DEFAULT_MODEL, timeout=5) as llm:  # without /v1
        with pytest.raises(LLMStreamBroken, match="RAG_OPENAI_BASE_URL"):
            llm.chat(MESSAGES)
        assert "RAG_OPENAI_BASE_URL" in llm.status().detail


# ------------------------------------------------------------------ the registry
def test_registry_chooses_by_name(fake_openai):
    s = get_settings(generator="openai", openai_base_url=fake_openai.base_url, llm_model=DEFAULT_MODEL)
    llm = make_llm(s)
    assert isinstance(llm, OpenAILLM) and llm.status().ok
    assert backend_name(get_settings(generator="auto")) == "ollama"
    assert backend_name(get_settings(generator="auto", openai_base_url=fake_openai.base_url)) == "openai"
    assert isinstance(make_llm(get_settings(generator="ollama", openai_base_url=fake_openai.base_url)), OllamaLLM)
    assert make_llm(get_settings(generator="extractive")) is None
