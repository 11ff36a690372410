"""A running server sees every new index version (issue 22), over real HTTP against real ``rag serve``
processes: ``rag add`` from the command line is searched, cited and counted without a restart (one
process and ``--workers 2``); ``--watch`` indexes a plain file copy; the CLI and an upload adding at
once both arrive; 8 clients searching while 10 articles are added and removed one by one get no
error and every answer from one whole index version (``X-Index-Version``).

The data folder holds three of the shipped articles to keep the builds short.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api_fixtures import ServeProcess, free_port, until, wait_healthy
from tests.conftest import ARTICLES, REPO

SUBSET = ["01-jihyun-park-verkiezingskandidaat.md", "07-dochter-kim-jong-un.md", "09-geavanceerder-wapentuig.md"]
API_KEY = "live-test-key"
SEEN_WITHIN = 5.0  # seconds (issue 22: "within 5 s")
NEW_ARTICLE = """---
title: Bultruggen bij Wonsan
date: 2024-05-02
---

# Bultruggen bij Wonsan

Vissers uit Wonsan zagen deze week een groep bultruggen langs de kust zwemmen. Volgens de vissers
waren het zeven walvissen, die drie dagen in de baai bleven voordat ze naar het noorden trokken.
"""
QUESTION = "Hoeveel bultruggen zagen de vissers bij Wonsan?"


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO),
         "RAG_LLM_PROBE_TIMEOUT": "1", "OLLAMA_HOST": "http://127.0.0.1:9", **extra}
    e.pop("RAG_API_KEY", None)
    e.update(extra)
    return e


def rag(*args: str, **extra: str) -> subprocess.CompletedProcess:
    """This tree's ``rag`` command (``python -m rag.cli``: the worktree's code, not an installed copy)."""
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], env=env(**extra), cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@dataclass
class Server(ServeProcess):
    data: Path
    index: Path


def serve(tmp: Path, *flags: str, **extra: str) -> Server:
    data, index = tmp / "articles", tmp / "index"
    data.mkdir(parents=True)
    for name in SUBSET:
        shutil.copy(ARTICLES / name, data / name)
    port = free_port()
    log_path = tmp / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--data", str(data), "--index", str(index), *flags],
                                stdout=log, stderr=subprocess.STDOUT, env=env(**extra), cwd=REPO)
    return wait_healthy(Server(proc, f"http://127.0.0.1:{port}", log_path, data, index), 240)


def search_docs(url: str, q: str, mode: str = "bm25", k: int = 10) -> list[str]:
    r = httpx.get(url + "/api/search", params={"q": q, "mode": mode, "k": k}, timeout=30)
    assert r.status_code == 200, r.text
    return [h["doc_id"] for h in r.json()["results"]]


def health(url: str) -> dict:
    r = httpx.get(url + "/health", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def assert_new_article_served(url: str, doc_id: str, documents: int, *, every_process: bool = False) -> None:
    """Within SEEN_WITHIN s the search finds the article (with ``every_process``: 12 new connections in a
    row, so each worker process, find it and count it); then /api/ask cites it."""
    deadline = time.monotonic() + SEEN_WITHIN
    until(lambda: doc_id in search_docs(url, "bultruggen Wonsan"), f"{doc_id} in /api/search", SEEN_WITHIN)
    rounds = 12 if every_process else 1  # several connections: each worker process is asked
    seen = 0
    while seen < rounds:
        with httpx.Client(timeout=30) as c:  # a new connection each round
            found = doc_id in [h["doc_id"] for h in c.get(url + "/api/search", params={"q": "bultruggen Wonsan", "mode": "bm25"}).json()["results"]]
            h = c.get(url + "/health").json()
        if not found or h["documents"] != documents:  # a process that has not loaded the new version yet
            assert time.monotonic() < deadline, f"not every process serves {doc_id} within {SEEN_WITHIN} s: {h}"
            seen = 0
            time.sleep(0.1)
            continue
        assert h["index"]["loaded_at"] and h["index"]["reload_error"] is None
        seen += 1
    r = httpx.post(url + "/api/ask", json={"question": QUESTION, "generator": "extractive"}, timeout=60)
    assert r.status_code == 200, r.text
    assert doc_id in {c["doc_id"] for c in r.json()["citations"]}, r.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("live"), RAG_API_KEY=API_KEY)
    yield s
    s.stop()


def test_rag_add_is_served_without_a_restart(server, tmp_path):
    before = health(server.url)
    assert before["documents"] == len(SUBSET) and before["index"]["version"]
    assert "bultruggen-wonsan" not in search_docs(server.url, "bultruggen Wonsan")
    src = tmp_path / "bultruggen-wonsan.md"
    src.write_text(NEW_ARTICLE, "utf-8")
    done = rag("add", str(src), "--data", str(server.data), "--index", str(server.index))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_new_article_served(server.url, "bultruggen-wonsan", len(SUBSET) + 1)
    after = health(server.url)
    assert after["index"]["version"] != before["index"]["version"]
    assert after["index"]["loaded_at"] >= before["index"]["loaded_at"]
    assert server.proc.poll() is None


def test_cli_and_upload_adding_at_once_both_arrive(server, tmp_path):
    n = health(server.url)["documents"]
    a, b = tmp_path / "kraanvogels-a.md", tmp_path / "ooievaars-b.md"
    a.write_text("# Kraanvogels\n\nKraanvogels trokken over Sinuiju, meldden boeren in de grensstreek.\n", "utf-8")
    b.write_text("# Ooievaars\n\nOoievaars nestelden op een fabrieksschoorsteen in Hamhung, zag een bezoeker.\n", "utf-8")

    def upload():
        with open(b, "rb") as fh:
            return httpx.post(server.url + "/api/documents", files={"file": (b.name, fh, "text/markdown")},
                              headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        cli = pool.submit(rag, "add", str(a), "--data", str(server.data), "--index", str(server.index))
        up = pool.submit(upload)
        done, r = cli.result(), up.result()
    assert done.returncode == 0, done.stdout + done.stderr
    assert r.status_code == 201, r.text
    until(lambda: health(server.url)["documents"] == n + 2, "both new articles counted", SEEN_WITHIN)
    assert "kraanvogels-a" in search_docs(server.url, "kraanvogels Sinuiju")
    assert "ooievaars-b" in search_docs(server.url, "ooievaars Hamhung")
    manifest = json.loads((server.index / (server.index / "CURRENT").read_text().strip() / "manifest.json").read_text())
    assert {"kraanvogels-a.md", "ooievaars-b.md"} <= set(manifest["files"])


def test_a_version_that_cannot_be_loaded_leaves_the_old_one_served(server):
    good = (server.index / "CURRENT").read_text().strip()
    bad = server.index / "v-99999999T000000-broken"
    shutil.copytree(server.index / good, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**manifest, "format_version": 999}))
    before = search_docs(server.url, "bultruggen Wonsan")
    try:
        (server.index / "CURRENT").write_text(bad.name + "\n")
        h = until(lambda: (h := health(server.url))["index"]["reload_error"] and h, "the reload error", SEEN_WITHIN)
        assert bad.name in h["index"]["reload_error"] and "format version" in h["index"]["reload_error"]
        assert h["index"]["version"] == good and h["status"] == "ok"
        r = httpx.get(server.url + "/api/search", params={"q": "bultruggen Wonsan", "mode": "bm25"}, timeout=30)
        assert r.status_code == 200 and r.headers["x-index-version"] == good
        assert [x["doc_id"] for x in r.json()["results"]] == before
    finally:
        (server.index / "CURRENT").write_text(good + "\n")
        shutil.rmtree(bad)
    # the pointer back on a good version: the error is gone (nothing to load, the same version)
    until(lambda: health(server.url)["index"]["reload_error"] is None, "the error cleared", SEEN_WITHIN)


def mapped_versions(pid: int) -> set[str]:
    """The index versions whose files the process has mapped (mmap: vectors, FAISS, BM25)."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        for part in line.split("/"):
            if part.startswith("v-"):
                names.add(part)
    return names


def _version_docs(index: Path, marker: str) -> tuple[str, frozenset[str]]:
    """(active version, doc ids of the hammer's articles in it), read from the index on disk."""
    name = (index / "CURRENT").read_text().strip()
    files = json.loads((index / name / "manifest.json").read_text())["files"]
    return name, frozenset(f["doc_id"] for p, f in files.items() if p.startswith(marker))


def test_searches_during_adds_and_removes_see_whole_versions(server, embedder):
    """8 clients search while 10 articles are added, then removed, one by one (each a new version)."""
    from rag.config import Settings
    from rag.runtime import build

    marker = "flamingo-"
    settings = Settings(data_dir=server.data, index_dir=server.index)
    versions: dict[str, frozenset[str]] = dict([_version_docs(server.index, marker)])
    answers: list[tuple[str | None, int, frozenset[str]]] = []
    errors: list[str] = []
    stop = threading.Event()

    def client(i: int) -> None:
        mode = "bm25" if i % 2 == 0 else "hybrid"
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                try:
                    r = c.get(server.url + "/api/search", params={"q": "flamingoparade", "mode": mode, "k": 50})
                except httpx.HTTPError as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    continue
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                docs = frozenset(h["doc_id"] for h in r.json()["results"] if h["doc_id"].startswith(marker))
                answers.append((r.headers.get("x-index-version"), i % 2, docs))

    def change(step) -> None:
        step()
        report = build(settings, embedder)
        assert report.wrote
        name, docs = _version_docs(server.index, marker)
        versions[name] = docs

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, i) for i in range(8)]
        try:
            for k in range(10):
                path = server.data / f"{marker}{k:02d}.md"
                change(lambda: path.write_text(f"# Flamingo {k}\n\nDe flamingoparade nummer {k} trok door "
                                               f"Pyongyang, met {k + 3} praalwagens.\n", "utf-8"))
                time.sleep(0.3)
            for k in range(10):
                change(lambda: (server.data / f"{marker}{k:02d}.md").unlink())
                time.sleep(0.3)
            until(lambda: health(server.url)["index"]["version"] == list(versions)[-1], "the last version", SEEN_WITHIN)
            time.sleep(0.5)
        finally:
            stop.set()
            for f in futures:
                f.result()

    print(f"hammer: {len(answers)} answers, {len(errors)} errors, {len({v for v, _, _ in answers})} of "
          f"{len(versions)} versions seen")
    assert not errors, errors[:5]
    assert len(versions) == 21
    seen = {v for v, _, _ in answers}
    assert None not in seen and seen <= set(versions), seen - set(versions)
    assert len(seen) >= 5, f"the clients saw only {len(seen)} of the 21 versions"
    # the old versions are freed: the server maps only files of the version it serves
    last = list(versions)[-1]
    try:
        until(lambda: mapped_versions(server.proc.pid) == {last}, "only the last version mapped", SEEN_WITHIN)
    except AssertionError:
        raise AssertionError(f"mapped: {mapped_versions(server.proc.pid)}, served: {last}, "
                             f"seen: {sorted(seen)}") from None
    for version, lexical, docs in answers:
        if lexical == 0:  # BM25: exactly the version's articles with the word, no more, no fewer
            assert docs == versions[version], (version, sorted(docs), sorted(versions[version]))
        else:  # hybrid: never an article the version does not hold
            assert docs <= versions[version], (version, sorted(docs), sorted(versions[version]))
    assert server.proc.poll() is None


def test_workers_2_follow_rag_add(tmp_path):
    s = serve(tmp_path, "--workers", "2")
    try:
        src = tmp_path / "bultruggen-wonsan.md"
        src.write_text(NEW_ARTICLE, "utf-8")
        done = rag("add", str(src), "--data", str(s.data), "--index", str(s.index))
        assert done.returncode == 0, done.stdout + done.stderr
        assert_new_article_served(s.url, "bultruggen-wonsan", len(SUBSET) + 1, every_process=True)
    finally:
        s.stop()


def test_watch_indexes_a_plain_copy_and_a_removal(tmp_path):
    s = serve(tmp_path, "--watch")
    try:
        src = tmp_path / "bultruggen-wonsan.md"
        src.write_text(NEW_ARTICLE, "utf-8")
        shutil.copy(src, s.data / src.name)
        assert_new_article_served(s.url, "bultruggen-wonsan", len(SUBSET) + 1)
        (s.data / "notes.xyz").write_text("not an article", "utf-8")  # skipped, with rag index's reason
        (s.data / src.name).unlink()
        until(lambda: health(s.url)["documents"] == len(SUBSET), "the removal", SEEN_WITHIN)
        assert "bultruggen-wonsan" not in search_docs(s.url, "bultruggen Wonsan")
        until(lambda: "notes.xyz" in s.log(), "the skip reason in the log", SEEN_WITHIN)
    finally:
        s.stop()


def test_sigterm_stops_the_server_during_a_long_upload_and_a_second_upload_gets_409(server, tmp_path):
    """Issue 25 point 8 (run last on the shared server: it stops it). A long rebuild (a ~300 kB article)
    holds the admin lock: a second upload answers 409 at once; SIGTERM then stops the server promptly,
    the rebuild is abandoned and the index stays as it was."""
    from rag.index.local.store import IndexStore

    before = (server.index / "CURRENT").read_text().strip()
    docs_before = health(server.url)["documents"]
    big = tmp_path / "havenberichten.md"
    big.write_text("# Havenberichten uit Nampo\n\n" + "\n\n".join(
        f"Op dag {i} ontving de haven van Nampo {i % 17 + 2} schepen met graan, kolen en {i * 7 % 31} containers; "
        f"de havenmeester noemde het bericht nummer {i} rustig." for i in range(2500)), "utf-8")
    small = tmp_path / "reigers.md"
    small.write_text("# Reigers\n\nReigers visten in de Taedong, zagen wandelaars in Pyongyang.\n", "utf-8")
    auth = {"Authorization": f"Bearer {API_KEY}"}

    def upload(path: Path) -> httpx.Response:
        with open(path, "rb") as fh:
            return httpx.post(server.url + "/api/documents", files={"file": (path.name, fh, "text/markdown")},
                              headers=auth, timeout=120)

    with ThreadPoolExecutor(1) as pool:
        long_one = pool.submit(upload, big)
        until(lambda: (server.data / big.name).exists(), "the long upload under way (its file stored)", 60)
        second = upload(small)
        assert second.status_code == 409, second.text
        assert "running" in second.json()["detail"], second.text
        assert not long_one.done()
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=60)
        stopped_after = time.monotonic() - t0
        try:
            answer = long_one.result()
            assert answer.status_code == 503, answer.text  # the abandoned rebuild says why
        except httpx.HTTPError:
            pass  # or the connection closed with the server
    print(f"SIGTERM during the long upload: the server stopped after {stopped_after:.1f} s")
    assert (server.index / "CURRENT").read_text().strip() == before
    assert not [p.name for p in server.index.iterdir() if p.name.startswith(".staging-")]
    assert len(IndexStore.load(server.index).documents) == docs_before
    assert not (server.data / big.name).exists() and not (server.data / small.name).exists()
