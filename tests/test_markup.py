"""Issue 36 point 2: quoted text is plain text.

* ingest takes HTML markup out of Markdown and text articles (``rag.ingest.markup``), keeping the
  offsets of what it keeps (``document.text[start:end] == chunk.text``);
* ``/v1`` and MCP escape what remains -- also what a model writes -- for clients that render
  Markdown or HTML (``rag.answer.sources.escape_markup``).

End to end: an article full of inline HTML and footnote markers, in a real index with the real
embedding model, asked through ``/api/ask``, ``/v1`` (streamed and not) and MCP, answered
extractively and by an LLM (the fake OpenAI-compatible server, echoing the passage it was given).
"""

from __future__ import annotations

import random
import re
import shutil

import anyio
import pytest
from fastapi.testclient import TestClient

from rag.answer.sources import MarkupEscaper, answer_with_sources, escape_markup
from rag.ingest.markup import strip_markup
from tests.api_fixtures import parse_sse
from tests.conftest import ARTICLES
from tests.fake_ollama import DEFAULT_MODEL

ARTICLE = """---
title: <span class="kop">Restaurant</span> in Hanoi <img src=x onerror=alert('titel')>
date: 2024-05-02
author: <script>alert('auteur')</script>Min-jun Lee
---
# Restaurant in Hanoi <b onmouseover=alert(2)>geopend</b>

<div class="lead" onclick="steal()">Het Noord-Koreaanse staatsbedrijf Okryu opende in maart een nieuw
restaurant in <a href="javascript:alert(3)">Hanoi</a>, aan de oever van het Westmeer[1].</div>
<script>alert('body-script')</script>
Het restaurant <img src="x.png" onerror="alert('img')">serveert koude noedels uit Pyongyang en
biedt plaats aan honderdtwintig gasten [2].<style>.x{color:red}</style> De serveersters zingen elke
avond liederen over de leider<sup>[3]</sup>.<br>
Volgens de Vietnamese autoriteiten gaat de winst naar het regime in Pyongyang&nbsp;[4].
<!-- <script>alert('comment')</script> -->
<iframe src="https://evil.example/"></iframe>
<p>Het restaurant is het derde van Okryu in Zuidoost-Azië <img src=y onerror=alert(5)
</p>

[1]: https://example.org/bron-1
"""
QUESTION = "Welk restaurant opende het staatsbedrijf Okryu in Hanoi?"
ENGLISH = "Which restaurant did the state company Okryu open in Hanoi?"
UNSAFE = re.compile(r"</?(script|img|iframe|style|div|span|b|a|sup|p)\b|\bon[a-z]+\s*=", re.I)


def assert_plain(text: str, where: str) -> None:
    m = UNSAFE.search(text)
    assert m is None, f"{where}: markup {m.group(0)!r} in {text!r}"


# ============================================================================ ingest


def test_strip_markup_keeps_the_text_and_drops_the_markup():
    text = strip_markup(ARTICLE.split("---\n", 2)[2])
    assert_plain(text, "stripped article")
    for gone in ("alert", "steal", "color:red", "evil.example", "<!--"):
        assert gone not in text
    for kept in ("Okryu opende in maart een nieuw\nrestaurant in Hanoi, aan de oever van het Westmeer[1].",
                 "serveert koude noedels", "liederen over de leider[3].", "Pyongyang [4].",
                 "Zuidoost-Azië", "[1]: https://example.org/bron-1"):
        assert kept in text, kept


@pytest.mark.parametrize("text", [
    "a < b en b > c, <3, <https://example.org/x?a=1&b=2> en <naam@example.org>",
    "```html\n<p class=\"x\">code</p>\n```\n",
    "Een escaped &lt;script&gt; blijft tekst, &amp; ook.",
    "Geen opmaak hier.",
])
def test_strip_markup_leaves_text_that_is_not_markup(text):
    assert strip_markup(text) == text


def test_strip_markup_of_hostile_shapes():
    assert strip_markup("a<script>x = `y`; </script>b") == "ab"  # backticks in a script are no code span
    assert strip_markup("a<SCRIPT type=x>\nalert(1)\n</Script >b") == "ab"
    assert strip_markup("tekst <img src=x onerror=alert(1)\nvolgende regel") == "tekst\nvolgende regel"
    assert strip_markup("<script>nooit gesloten en dan tekst") == "nooit gesloten en dan tekst"
    assert strip_markup("x &#60;script&#62; &#8220;aanhaling&#8221;&nbsp;y") == "x &#60;script&#62; “aanhaling” y"


def test_documents_and_chunks_of_an_article_with_markup(tmp_path, embedder):
    from rag.ingest.chunking import chunk_document
    from rag.ingest.documents import load_file

    path = tmp_path / "restaurant.md"
    path.write_text(ARTICLE, "utf-8")
    doc = load_file(path, "restaurant.md", 5_000_000)
    assert doc.title == "Restaurant in Hanoi"
    assert doc.metadata["author"] == "Min-jun Lee" and doc.metadata["date"] == "2024-05-02"
    assert_plain(doc.text, "document text")
    chunks = chunk_document(doc, embedder.count_tokens, embedder.max_tokens, 40, 8)
    assert len(chunks) > 1
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text


# ============================================================================ escaping for /v1 and MCP


def test_escape_markup_and_the_streamed_escaper_agree():
    text = "Hij schreef <script>alert(1)</script>, <img src=x onerror =alert(2)> en a < b, <3, ONLOAD=x"
    escaped = escape_markup(text)
    assert_plain(escaped, "escaped")
    assert escaped.replace("&lt;", "<").replace("&#61;", "=") == text  # the reader sees the same characters
    rnd = random.Random(36)
    for _ in range(500):
        cuts = sorted(rnd.sample(range(1, len(text)), rnd.randint(0, 15)))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
        escaper = MarkupEscaper()
        assert "".join(escaper.feed(p) for p in pieces) + escaper.flush() == escaped, pieces


def test_answer_with_sources_is_escaped():
    cite = {"n": 1, "title": "Kop <b>vet</b>", "text": "Zin <img src=x onerror=alert(1)>.", "start": 0, "end": 30}
    out = answer_with_sources("Antwoord <script>x</script> [1].", [cite], "Wat?")
    assert_plain(out, "answer with sources")
    assert "\nBronnen:\n[1] " in out


# ============================================================================ end to end


@pytest.fixture(scope="module")
def markup_runtime(tmp_path_factory, embedder):
    from rag.config import Settings
    from rag.runtime import open_runtime

    tmp = tmp_path_factory.mktemp("markup")
    data = tmp / "data"
    data.mkdir()
    for name in sorted(p.name for p in ARTICLES.glob("*.md"))[:3]:
        shutil.copy(ARTICLES / name, data / name)
    (data / "restaurant-hanoi.md").write_text(ARTICLE, "utf-8")
    settings = Settings(data_dir=data, index_dir=tmp / "index")
    return open_runtime(settings, embedder=embedder, update=True)


def echo_passage(body: dict) -> str:
    """A model that quotes its first passage: whatever the passage holds reaches the answer."""
    user = body["messages"][-1]["content"]
    if '"standalone"' in body["messages"][0]["content"]:  # the rewrite call
        return '{"standalone": "%s", "dutch": "%s"}' % (ENGLISH, QUESTION)
    m = re.search(r'<passage n="1"[^>]*>\n(.*?)\n</passage>', user, re.S)
    return (" ".join(m.group(1).split()[:40]) if m else "niets") + " [1]."


@pytest.fixture
def settings_for(markup_runtime, fake_openai):
    def make(generator: str):
        return markup_runtime.settings.model_copy(update={
            "generator": generator, "openai_base_url": fake_openai.base_url, "llm_model": DEFAULT_MODEL,
            "llm_probe_timeout": 1.0, "llm_timeout": 20.0, "allowed_hosts": "testserver"})
    return make


def answers_over_http(settings, runtime, generator: str) -> dict[str, str]:
    from api.app import create_app

    model = {"extractive": "rag-extractive", "openai": "rag-openai"}[generator]
    out = {}
    with TestClient(create_app(settings, runtime=runtime)) as client:
        for question in (QUESTION, ENGLISH):
            r = client.post("/api/ask", json={"question": question, "generator": generator})
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["citations"] and any(c["doc_id"] == "restaurant-hanoi" for c in answer["citations"])
            out[f"/api/ask {question}"] = answer["answer"]
            r = client.post("/api/ask", json={"question": question, "generator": generator, "stream": True})
            events = parse_sse(r.text)
            out[f"/api/ask stream {question}"] = events[-1][1]["answer"]
            messages = [{"role": "user", "content": question}]
            r = client.post("/v1/chat/completions", json={"model": model, "messages": messages})
            assert r.status_code == 200, r.text
            out[f"/v1 {question}"] = r.json()["choices"][0]["message"]["content"]
            r = client.post("/v1/chat/completions", json={"model": model, "messages": messages, "stream": True})
            chunks = [line[6:] for line in r.text.splitlines() if line.startswith("data: {")]
            out[f"/v1 stream {question}"] = "".join(
                (__import__("json").loads(c)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                for c in chunks)
    return out


def answer_over_mcp(settings, runtime) -> dict:
    from mcp import Client

    from rag.answer.pipeline import Pipeline
    from rag.cli.mcp_server import build_server
    from rag.llms.registry import make_llm

    llm = make_llm(settings, None if settings.generator != "extractive" else "auto")
    server = build_server(runtime, Pipeline(runtime.retriever, llm, settings), settings)
    out: dict = {}

    async def session():
        async with Client(server) as client:
            out["ask"] = await client.call_tool("ask_articles", {"question": QUESTION})

    try:
        anyio.run(session)
    finally:
        if llm is not None:
            llm.close()
    assert not out["ask"].is_error, out["ask"]
    return out["ask"].structured_content


@pytest.mark.parametrize("generator", ["extractive", "openai"])
def test_article_markup_never_reaches_an_answer(markup_runtime, settings_for, fake_openai, generator):
    fake_openai.reply = echo_passage
    settings = settings_for(generator)
    answers = answers_over_http(settings, markup_runtime, generator)
    mcp = answer_over_mcp(settings, markup_runtime)
    answers["mcp"] = mcp["answer"]
    assert mcp["generator"] == generator
    for where, text in answers.items():
        assert "Okryu" in text or "restaurant" in text.lower(), (where, text)
        assert_plain(text, where)
    if generator == "openai":
        assert fake_openai.chat_requests


def test_markup_a_model_writes_is_escaped_for_v1_and_mcp(markup_runtime, settings_for, fake_openai):
    """The page inserts text safely; /v1 and MCP clients may render it, so they get it escaped."""
    fake_openai.reply = ("Okryu opende een restaurant in Hanoi <img src=x onerror=alert('llm')> "
                         "<script>alert('llm')</script> [1].")
    settings = settings_for("openai")
    answers = answers_over_http(settings, markup_runtime, "openai")
    answers["mcp"] = answer_over_mcp(settings, markup_runtime)["answer"]
    for where, text in answers.items():
        if where.startswith("/api/ask"):
            assert "<img src=x" in text  # /api/ask gives the model's words as they are (the page inserts text)
        else:
            assert_plain(text, where)
            assert "&lt;img src=x onerror&#61;alert('llm')>" in text, (where, text)
