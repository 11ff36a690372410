"""The OpenAI-compatible endpoint (api/openai_compat.py) with the official ``openai`` client against a
real uvicorn server: the real index of data/articles (offline model) and the fake Ollama server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from api.app import create_app
from tests.live_server import live_server

QUESTION = "Wie is Jihyun Park?"
PARK_DOC = "01-jihyun-park-verkiezingskandidaat"
REPLY = ("Jihyun Park is een Noord-Koreaanse vluchteling, mensenrechtenactivist en aspirant-politicus "
         "die kandidaat is bij de regionale verkiezingen in het Verenigd Koninkrijk [1].")


@pytest.fixture(scope="module")
def server(runtime, _fake_ollama_server) -> Iterator[str]:
    settings = runtime.settings.model_copy(update={"ollama_host": _fake_ollama_server.url,
                                                   "llm_probe_timeout": 1.0, "llm_timeout": 20.0})
    with live_server(create_app(settings, runtime=runtime)) as url:
        yield url
    _fake_ollama_server.reset()


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="not-needed", max_retries=0, timeout=60)


def test_models_are_listed(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["rag", "rag-ollama", "rag-openai", "rag-extractive"]
    assert client.models.retrieve("rag-extractive").id == "rag-extractive"


def test_chat_completion_has_the_cited_answer_and_the_sources(client, fake_ollama, runtime):
    fake_ollama.reply = REPLY
    r = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
    content = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop" and r.object == "chat.completion"
    assert content.startswith(REPLY)  # the checked answer ...
    assert "\n\nBronnen:\n[1] " in content  # ... with the sources under it
    citations = r.model_extra["citations"]  # the same structured citations as /api/ask
    assert citations and citations[0]["doc_id"] == PARK_DOC and citations[0]["n"] == 1
    c = citations[0]
    assert runtime.store.documents[c["doc_id"]].text[c["start"]:c["end"]] == c["text"]
    line = next(ln for ln in content.splitlines() if ln.startswith("[1] "))
    assert line.startswith(f"[1] {c['title'].lstrip('# ')}") and "„„" not in line and "# " not in line
    # the documented form: "[1] title (date): quote" (the date when known, ", p. N" for a PDF page)
    import re

    date = f" ({c['date']})" if c["date"] else ""
    assert re.match(re.escape(f"[1] {c['title'].lstrip('# ').strip()}{date}") + r"(, p\. \d+)?: \S", line), line
    doc = runtime.store.documents[c["doc_id"]].text
    for q in c["quotes"]:  # the source line shows the cited sentences, word for word
        assert " ".join(doc[q["start"]:q["end"]].split()) in line
    assert fake_ollama.chat_requests


def test_streaming_sends_chunks_then_done(client, fake_ollama):
    fake_ollama.reply = REPLY
    stream = client.chat.completions.create(model="rag", stream=True,
                                            messages=[{"role": "user", "content": QUESTION}])
    chunks = list(stream)  # the client stops at "data: [DONE]"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert len(chunks) > 5, "the answer should arrive in pieces"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"][0]["doc_id"] == PARK_DOC
    assert text.startswith(REPLY) and "\nBronnen:\n[1] " in text


def test_extractive_model_uses_no_llm_and_history_is_passed(client, fake_ollama):
    r = client.chat.completions.create(model="rag-extractive", messages=[
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Jihyun Park is een vluchteling [1]."},
        {"role": "user", "content": "Bij welke verkiezingen is ze kandidaat?"},
    ])
    assert not fake_ollama.chat_requests
    assert r.model_extra["rag"]["generator"] == "extractive"
    assert r.model_extra["rag"]["standalone_question"], "the follow-up was not resolved with the history"
    assert r.model_extra["citations"] and "[1]" in r.choices[0].message.content


def test_errors_have_the_openai_shape(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert e.value.status_code == 404 and e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="rag", messages=[{"role": "assistant", "content": "hallo"}])
    assert "last message" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="rag", messages=[{"role": "user", "content": "x" * 5000}])
    assert "too long" in e.value.message
    r = httpx.post(server + "/v1/chat/completions", content=b"{not json", timeout=10,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_llm_error_streams_as_an_openai_error(client, fake_ollama):
    fake_ollama.mode = "model_missing"
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="rag-ollama", messages=[{"role": "user", "content": QUESTION}])
    assert e.value.status_code == 503 and "ollama pull" in e.value.message
