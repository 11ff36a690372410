"""`rag ask` as a user runs it: a subprocess with settings from the environment, against the
session's index of the shipped articles, with Ollama down or played by the fake server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ARTICLES
from tests.fake_ollama import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
CHARKIV = "Hoeveel gewonden vielen er bij de aanval op Charkiv?"
EVIDENCE = "meer dan veertig gewonden"


def rag_ask(args: list[str], index: Path, ollama_url: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "RAG_INDEX_DIR": str(index), "RAG_DATA_DIR": str(ARTICLES),
        "OLLAMA_HOST": ollama_url,
        "RAG_LLM_TIMEOUT": "5", "RAG_LLM_PROBE_TIMEOUT": "1", "COLUMNS": "200",
    })
    return subprocess.run([sys.executable, "-m", "rag.cli.main", "ask", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_json_with_ollama_down_answers_extractively(shipped_index, dead_ollama_url):
    r = rag_ask([CHARKIV, "--json", "-k", "4"], shipped_index, dead_ollama_url)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"answer", "abstained", "generator", "citations", "sources", "timings"} <= set(d)
    assert d["generator"] == "extractive" and d["abstained"] is False
    assert set(d["timings"]) >= {"retrieval_ms", "generation_ms"}
    assert len(d["sources"]) == 4
    assert set(d["sources"][0]) >= {"rank", "score", "doc_id", "title", "text", "start", "end", "chunk_id"}
    assert d["citations"] and all({"n", "doc_id", "title", "text", "start", "end"} <= set(c) for c in d["citations"])
    assert any(c["doc_id"] == "09-geavanceerder-wapentuig" and EVIDENCE in norm(c["text"]) for c in d["citations"])
    assert any("not reachable" in w for w in d["warnings"])


def test_json_with_the_fake_server_answers_with_ollama(shipped_index, fake_ollama):
    fake_ollama.reply = "Bij de aanval op Charkiv vielen meer dan veertig gewonden [1]."
    r = rag_ask([CHARKIV, "--json"], shipped_index, fake_ollama.url)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["generator"] == "ollama" and d["answer"] == fake_ollama.reply
    assert [c["n"] for c in d["citations"]] == [1] and d["citations"][0]["doc_id"] == d["sources"][0]["doc_id"]
    body = fake_ollama.last_chat
    assert body["model"] == DEFAULT_MODEL and body["options"]["num_ctx"] == 8192 and CHARKIV in body["messages"][-1]["content"]


def test_streamed_answer_then_sources(shipped_index, fake_ollama):
    fake_ollama.reply = "Er vielen meer dan veertig gewonden [1]."
    r = rag_ask([CHARKIV], shipped_index, fake_ollama.url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == fake_ollama.reply
    out = r.stdout
    assert "Bronnen" in out and "[1]" in out.split("Bronnen", 1)[1]
    src = out.split("Bronnen", 1)[1]
    assert re.search(r"\[1\] Noord-Korea bouwt uit alle macht aan geavanceerder wapentuig "
                     r"(\(\d{4}-\d\d-\d\d\) )?\(09-geavanceerder-wapentuig \d+-\d+\)", src)
    assert "meer dan veertig gewonden" in src and "# " not in src  # the cited sentence, no Markdown
    assert "answered by ollama" in r.stderr


def test_generator_ollama_with_ollama_down_is_a_one_line_error(shipped_index, dead_ollama_url):
    r = rag_ask([CHARKIV, "--generator", "ollama"], shipped_index, dead_ollama_url)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not reachable" in errors[0] and "ollama serve" in errors[0]
    assert r.stdout.strip() == ""


def test_generator_ollama_without_the_model_names_the_pull(shipped_index, fake_ollama):
    fake_ollama.mode = "model_missing"
    r = rag_ask([CHARKIV, "--generator", "ollama"], shipped_index, fake_ollama.url)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"ollama pull {DEFAULT_MODEL}" in errors[0]
    assert r.stdout.strip() == ""


@pytest.mark.parametrize("args, words", [(["--generator", "gpt"], "unknown generator"), (["--mode", "x"], "unknown mode")])
def test_bad_options_fail_fast(shipped_index, dead_ollama_url, args, words):
    r = rag_ask([CHARKIV, *args], shipped_index, dead_ollama_url)
    assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr
