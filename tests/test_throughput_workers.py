"""``rag serve --workers N`` (issue 11): several processes answer on one port with the same results."""

from __future__ import annotations

import shutil

import httpx
import psutil

from tests.api_fixtures import start_serve
from tests.conftest import ARTICLES


def test_two_workers_serve_the_same_results(tmp_path, shipped_index, runtime, dead_ollama_url):
    index = tmp_path / "index"
    shutil.copytree(shipped_index, index)
    server = start_serve(ARTICLES, index, dead_ollama_url, tmp_path / "serve.log", extra_env={"RAG_WORKERS": "2"})
    try:
        workers = [p for p in psutil.Process(server.proc.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in workers]
        question = "Wie is Jihyun Park?"
        expected = [h.chunk.chunk_id for h in runtime.retriever.search(question, k=5)]
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for _ in range(4):  # new connections: the kernel hands them to either process
                with httpx.Client(base_url=server.url, timeout=60) as fresh:
                    r = fresh.get("/api/search", params={"q": question, "k": 5})
                assert r.status_code == 200, r.text
                assert [h["chunk_id"] for h in r.json()["results"]] == expected
            assert c.get("/health").json()["status"] == "ok"
    finally:
        server.stop()
