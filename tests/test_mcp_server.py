"""``rag mcp`` end to end: the official MCP SDK's client spawns ``python -m rag.cli.main mcp`` and talks
to it over stdio. The server reads a copy of the session's index of data/articles (offline model)
and asks the fake Ollama server."""

from __future__ import annotations

import json
import shutil
import sys

import anyio
import pytest

from tests.conftest import ARTICLES, REPO

REPLY = ("Jihyun Park is een Noord-Koreaanse vluchteling, mensenrechtenactivist en aspirant-politicus "
         "die kandidaat is bij de regionale verkiezingen in het Verenigd Koninkrijk [1].")
PARK_DOC = "01-jihyun-park-verkiezingskandidaat"


@pytest.fixture
def server_params(tmp_path, shipped_index, fake_ollama):
    from mcp import StdioServerParameters

    index = tmp_path / "index"
    shutil.copytree(shipped_index, index)
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OLLAMA_HOST": fake_ollama.url, "RAG_LLM_PROBE_TIMEOUT": "2"}
    return StdioServerParameters(command=sys.executable, args=["-m", "rag.cli.main", "mcp", "--data", str(ARTICLES),
                                                               "--index", str(index)],
                                 env=env, cwd=str(REPO))


def run(coro_fn):
    return anyio.run(coro_fn)


@pytest.mark.slow
def test_tools_resources_and_answers_over_stdio(server_params, fake_ollama):
    from mcp import Client

    fake_ollama.reply = REPLY
    out: dict = {}

    async def session():
        async with Client(server_params, read_timeout_seconds=120) as client:
            out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
            out["search"] = await client.call_tool("search_articles", {"query": "Jihyun Park", "k": 3})
            out["ask"] = await client.call_tool("ask_articles", {"question": "Wie is Jihyun Park?"})
            out["article"] = await client.call_tool("get_article", {"doc_id": PARK_DOC})
            out["missing"] = await client.call_tool("get_article", {"doc_id": "nope"})
            out["bad_k"] = await client.call_tool("search_articles", {"query": "x", "k": 500})
            out["resources"] = (await client.list_resources()).resources
            out["read"] = await client.read_resource(f"article://{PARK_DOC}")

    run(session)

    assert out["tools"] == ["ask_articles", "get_article", "search_articles"]

    results = out["search"].structured_content["results"]
    assert len(results) == 3 and results[0]["doc_id"] == PARK_DOC
    assert json.loads(out["search"].content[0].text)["results"][0]["doc_id"] == PARK_DOC  # text for the assistant

    ask = out["ask"].structured_content
    assert not out["ask"].is_error
    assert ask["answer"].startswith(REPLY) and "\nBronnen:\n[1] " in ask["answer"]
    assert ask["citations"][0]["doc_id"] == PARK_DOC and ask["generator"] == "ollama"
    assert fake_ollama.chat_requests, "the LLM was not asked"

    article = out["article"].structured_content
    assert article["doc_id"] == PARK_DOC and "Jihyun Park" in article["text"]
    assert article["text"][ask["citations"][0]["start"]:ask["citations"][0]["end"]] == ask["citations"][0]["text"]

    assert out["missing"].is_error and "no article with id 'nope'" in out["missing"].content[0].text
    assert out["bad_k"].is_error and "between 1 and 50" in out["bad_k"].content[0].text

    uris = {str(r.uri) for r in out["resources"]}
    assert len(uris) == len(list(ARTICLES.glob("*.md"))) and f"article://{PARK_DOC}" in uris
    text = out["read"].contents[0].text
    assert text.startswith("Jihyun Park") or "Jihyun Park" in text.splitlines()[0]


# ----------------------------------------------------------------------------- every request answered (issue 37 item 5)

def _raw_session(server_params):
    """``rag mcp`` over raw pipes, initialized; (process, send(line), reply(timeout) -> dict | None)."""
    import os
    import select
    import subprocess

    proc = subprocess.Popen([server_params.command, *server_params.args], cwd=server_params.cwd,
                            env={**os.environ, **server_params.env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)

    def send(line: bytes) -> None:
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()

    def reply(timeout: float = 20) -> dict | None:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        return json.loads(proc.stdout.readline()) if ready else None

    send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}).encode())
    assert reply(180)["id"] == 1
    send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    return proc, send, reply


@pytest.mark.slow
def test_every_request_gets_a_reply_even_malformed_ones(server_params):
    proc, send, reply = _raw_session(server_params)
    try:
        call = '{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": {"name": "%s", "arguments": %s}}'
        cases = [  # (line, id of the reply, JSON-RPC error code)
            (call % (2, "search_articles", '{"query": "\\ud800"}'), 2, -32602),  # a lone surrogate
            (call % (3, "ask_articles", '{"question": "Wie is \\udfff?"}'), 3, -32602),
            (b"{not json", None, -32700),
            (b"\xff\xfe garbage", None, -32700),
            (b"[1, 2]", None, -32600),
            (b'{"jsonrpc": "2.0", "id": 7}', 7, -32600),
            (b'{"jsonrpc": "2.0", "id": 8, "method": "no/such/method"}', 8, -32601),  # (the SDK's own)
        ]
        for line, rid, code in cases:
            send(line if isinstance(line, bytes) else line.encode())
            got = reply()
            assert got is not None, f"no reply to {line!r}"
            assert got["id"] == rid and got["error"]["code"] == code, (line, got)
        # a notification that cannot be read gets no reply (JSON-RPC), and the server goes on
        send(b'{"jsonrpc": "2.0", "method": "notifications/x", "params": {"a": "\\ud800"}}')
        send((call % (9, "search_articles", '{"query": "Kim\\u0000Jong-un"}')).encode())  # read, then refused
        got = reply()
        assert got["id"] == 9 and got["result"]["isError"] and "control character" in got["result"]["content"][0]["text"]
        send((call % (10, "search_articles", '{"query": "Jihyun Park", "k": 1}')).encode())
        got = reply()
        assert got["id"] == 10 and not got["result"].get("isError"), got
        assert got["result"]["structuredContent"]["results"][0]["doc_id"] == PARK_DOC
    finally:
        proc.kill()
        proc.wait(10)
        err = proc.stderr.read().decode(errors="replace")
    assert "refused (-32602)" in err and "refused (-32700)" in err  # logged, not silent
