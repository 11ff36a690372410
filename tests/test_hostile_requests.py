"""Hostile requests against a real uvicorn server (issue 24 item 3, issue 25 items 1, 2, 6, 7):
deep JSON refused before it is parsed on every JSON route, JSON-only bodies (415), the per-turn
history limit on /api/ask and /v1, a follow-up rewrite that stays within the question limit,
queries cut to the model's window, a clean ``rag add`` refusal for a name that is not UTF-8, and
HTML titles/dates read properly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from api.app import create_app
from api.middleware import json_depth
from rag.contract import MAX_TURN_CHARS
from rag.answer.rewrite import rewrite_by_rule
from tests.conftest import REPO
from tests.live_server import live_server

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(runtime, _fake_ollama_server) -> Iterator[str]:
    settings = runtime.settings.model_copy(update={"ollama_host": _fake_ollama_server.url, "llm_probe_timeout": 1.0})
    with live_server(create_app(settings, runtime=runtime)) as url:
        yield url
    _fake_ollama_server.reset()


def chat(text: str, history: list[dict] | None = None) -> dict:
    return {"model": "rag-extractive", "messages": [*(history or []), {"role": "user", "content": text}]}


# ----------------------------------------------------------------------------- deep and non-JSON bodies

def test_json_depth_is_counted_without_parsing():
    assert json_depth(b'{"a": [1, {"b": "[[[[ {{ \\" ]]"}]}') == 3
    assert json_depth(b"[" * 20_000 + b"]" * 20_000) == 20_000
    assert json_depth(b'"just a string"') == 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/ask"])
def test_deep_json_is_refused_with_422_and_the_server_stays_healthy(server, path):
    deep = b'{"model": "rag", "question": "x", "messages": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    r = httpx.post(server + path, content=deep, headers=JSON, timeout=30)
    assert r.status_code == 422, r.text[:300]
    message = r.json()["error"]["message"] if path.startswith("/v1") else r.json()["detail"]
    assert "nested 20001 levels deep" in message and "at most 32" in message
    assert httpx.get(server + "/health", timeout=10).json()["status"] in ("ok", "degraded")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/ask"])
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_bodies_that_are_not_declared_json_get_415(server, path, ctype):
    body = b'{"model": "rag-extractive", "question": "Wie is Jihyun Park?", "messages": [{"role": "user", "content": "Wie is Jihyun Park?"}]}'
    headers = {"Content-Type": ctype} if ctype else {}
    r = httpx.post(server + path, content=body, headers=headers, timeout=30)
    assert r.status_code == 415, r.text[:300]
    assert "application/json" in r.text
    ok = httpx.post(server + path, content=body, headers={"Content-Type": "application/json; charset=utf-8"}, timeout=60)
    assert ok.status_code == 200, ok.text[:300]


# ----------------------------------------------------------------------------- history and follow-ups

def test_a_history_turn_over_the_limit_is_refused_on_both_routes(server):
    long_turn = [{"role": "user", "content": "woord " * (MAX_TURN_CHARS // 5)}]
    r = httpx.post(server + "/v1/chat/completions", json=chat("En hoe oud is zij?", long_turn), timeout=30)
    assert r.status_code == 400 and "history" in r.json()["error"]["message"], r.text[:300]
    r = httpx.post(server + "/api/ask", json={"question": "En hoe oud is zij?", "generator": "extractive",
                                              "history": long_turn}, timeout=30)
    assert r.status_code == 422 and "history" in r.json()["detail"], r.text[:300]


def test_the_follow_up_rewrite_stays_within_the_question_limit(server, runtime):
    limit = runtime.settings.max_question_chars
    words = "Pyongyang raketlancering satelliet Sohae kolenmijn Hamhung antraciet ziekenhuis "
    turn = (words * 300)[:19_990]  # the probe's 19,990 characters (a 20,009-character question before)
    r = httpx.post(server + "/api/ask", json={"question": "En hoe oud is zij?", "generator": "extractive",
                                              "history": [{"role": "user", "content": turn}]}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    standalone = r.json()["standalone_question"]
    assert standalone.endswith(": En hoe oud is zij?") and len(standalone) <= limit
    assert len(standalone.split(": ")[0].split()) <= 16  # a handful of terms from the long turn, not all of it
    r = httpx.post(server + "/v1/chat/completions", json=chat("En hoe oud is zij?", [{"role": "user", "content": turn}]),
                   timeout=120)
    assert r.status_code == 200 and len(r.json()["rag"]["standalone_question"]) <= limit


def test_rewrite_by_rule_cuts_the_terms_at_a_word():
    history = [{"role": "user", "content": "Wie is de dochter van Kim Jong-un?"}]
    assert rewrite_by_rule("En hoe oud is zij?", history).standalone == "dochter Kim Jong-un: En hoe oud is zij?"
    out = rewrite_by_rule("En hoe oud is zij?", history, max_chars=30).standalone
    assert out == "dochter: En hoe oud is zij?"
    assert rewrite_by_rule("En hoe oud is zij?", history, max_chars=20).standalone == "En hoe oud is zij?"


def test_queries_are_cut_to_the_model_window(embedder):
    from rag.embed.base import truncate_to_tokens

    long = "De raket van Noord-Korea vloog over Japan en viel in de Stille Oceaan. " * 150  # ~2,500 tokens
    assert embedder.count_tokens(long) > 4 * embedder.max_tokens
    cut = truncate_to_tokens(long, embedder.count_tokens, embedder.max_tokens)
    assert embedder.max_tokens - 20 <= embedder.count_tokens(cut) <= embedder.max_tokens
    assert long.startswith(cut)
    # the long query is embedded as its window: the same vector as the cut one
    assert np.allclose(embedder.embed_query(long), embedder.embed_query(cut), atol=1e-6)


# ----------------------------------------------------------------------------- rag add, HTML import

def test_rag_add_of_a_name_that_is_not_utf8_is_refused_cleanly(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    src = tmp_path / os.fsdecode(b"caf\xe9-artikel.md")
    src.write_bytes(b"# Caf\xc3\xa9\n\nTekst over Pyongyang.\n")
    r = subprocess.run([sys.executable, "-m", "rag.cli.main", "add", os.fsencode(src), "--data", str(data),
                        "--index", str(tmp_path / "ix")], cwd=REPO, capture_output=True, timeout=120,
                       env={**os.environ, "COLUMNS": "200"})
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, err
    assert "Traceback" not in err and "not valid UTF-8" in err and "caf\\xe9-artikel.md" in err
    assert list(data.iterdir()) == []


PAGE = """<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>Zo'n raket | Nieuwsblad</title>
<meta property="og:title" content="Zo'n raket: Kim's nieuwe wapen"></head><body><article><h1>Zo'n raket</h1>
<p>Noord-Korea test sinds 2009 raketten boven de Japanse zee, zegt het ministerie van defensie in Seoul.</p>
<p>De nieuwe raket vloog achthonderd kilometer ver voordat hij in zee viel, aldus de Zuid-Koreaanse staf.</p>
</article></body></html>"""


def test_html_title_is_kept_whole_and_no_date_is_guessed_from_a_year():
    from rag.ingest.safe_parse import extract

    title, text, meta = extract("html", PAGE.encode())
    assert title == "Zo'n raket: Kim's nieuwe wapen"
    assert not meta.get("file_date")  # the page's own date (rag.ingest.formats), judged by rag.ingest.pubdate
    assert "sinds 2009" in text
    dated = PAGE.replace("</head>", '<meta property="article:published_time" content="2024-03-05T10:00:00Z"></head>')
    assert extract("html", dated.encode())[2]["file_date"] == "2024-03-05"
