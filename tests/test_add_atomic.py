"""``rag add`` is all or nothing (issue 36 point 6), and ``rag add URL`` has one deadline (issue 37 point 6).

* Every state a kill can leave, checked in process: the version that holds the article is written
  while the article is only staged (a hidden file), and stands for the previous version until the
  file is linked into the data folder -- for the local store, and for a server following the index.
* 20 real ``kill -9`` of ``rag add`` at random moments: each leaves the article in the data folder
  and the index, or in neither; a final ``rag index`` has nothing to add or remove.
* A web page that drips one byte at a time ends at ``--timeout``, in process and through the command.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.index.local.live import read_pointer
from rag.index.local.store import IndexStore, active_version, pointed_version
from rag.ingest.add import AddRefused, stage_bytes, stage_url
from tests.api_fixtures import RAG_BIN
from tests.conftest import ARTICLES, REPO

MAX = 5_000_000


def article(i: int) -> str:
    return f"# Bericht {i}\n\nDe vissersboot nummer {i} uit Sinpo kwam op dag {i} terug met een volle lading inktvis.\n"


def small_data(folder: Path) -> Path:
    folder.mkdir()
    for name in sorted(p.name for p in ARTICLES.glob("*.md"))[:3]:
        shutil.copy(ARTICLES / name, folder / name)
    return folder


def indexed_paths(index: Path) -> set[str]:
    return set(IndexStore.load(index, mmap=False).manifest["files"])


# ============================================================================ every state, in process


@pytest.fixture
def local(tmp_path, embedder, offline_settings):
    """(data folder, settings) of a small local index, built; and the version it serves."""
    from rag.index.stores import build_store

    data = small_data(tmp_path / "data")
    settings = offline_settings.model_copy(update={"data_dir": data, "index_dir": tmp_path / "index"})
    build_store(settings, embedder)
    return data, settings, active_version(settings.index_dir).name


def test_the_article_is_indexed_before_it_is_linked_and_counts_only_once_linked(tmp_path, embedder, local):
    from rag.index.stores import build_store

    data, settings, before = local

    staged = stage_bytes(data, "bericht.md", article(1).encode(), MAX)
    assert staged.tmp.name.startswith(f".adding-{os.getpid()}-") and not (data / "bericht.md").exists()
    seen = {}
    ix = settings.index_dir

    def state() -> tuple:
        """What a kill right now would leave: the pointer, the version it stands for, what that indexes."""
        return pointed_version(ix), active_version(ix).name, read_pointer(ix), "bericht.md" in indexed_paths(ix)

    def publish():
        seen["before_link"] = state()  # the new version is written and CURRENT names it; the file is not there
        staged.commit()
        seen["after_link"] = state()  # linked, not yet settled
        (data / "bericht.md").rename(tmp_path / "elsewhere.md")
        seen["file_gone"] = state()
        (tmp_path / "elsewhere.md").rename(data / "bericht.md")

    try:
        report = build_store(settings, embedder, extra={"bericht.md": staged.tmp}, publish=publish)
    finally:
        staged.discard()
    assert report.added == ["bericht.md"] and (data / "bericht.md").read_text("utf-8") == article(1)

    new = seen["after_link"][0]
    assert new != before
    assert seen["before_link"] == (new, before, before, False)  # the pointer names the new version: it stands for the old
    assert seen["after_link"] == (new, new, new, True)  # linked: the new version stands
    assert seen["file_gone"] == (new, before, before, False)

    now = active_version(settings.index_dir)  # settled: no longer waits for anything
    assert now.name == new and not (now / "requires.json").exists()
    assert "bericht.md" in indexed_paths(settings.index_dir)
    assert sorted(p.name for p in settings.index_dir.iterdir() if p.name.startswith("v-")) == [now.name]


def test_a_link_that_fails_leaves_the_old_version_and_no_file(embedder, local):
    from rag.index.stores import build_store

    data, settings, before = local
    staged = stage_bytes(data, "bericht.md", article(2).encode(), MAX)
    (data / "bericht.md").write_text("# Iemand anders\n\nschreef intussen een bestand met die naam.\n", "utf-8")
    with pytest.raises(AddRefused, match="already in the data folder"):
        build_store(settings, embedder, extra={"bericht.md": staged.tmp}, publish=staged.commit)
    staged.discard()
    assert active_version(settings.index_dir).name == before == pointed_version(settings.index_dir)
    assert "bericht.md" not in indexed_paths(settings.index_dir)


# ============================================================================ kill -9 at random moments


@pytest.mark.slow
def test_twenty_kills_of_rag_add_leave_twenty_consistent_states(tmp_path):
    from rag.config import Settings
    from rag.embed.embedders import load_embedder
    from rag.runtime import build

    data, index = small_data(tmp_path / "data"), tmp_path / "index"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    where = ["--data", str(data), "--index", str(index)]
    src = tmp_path / "src"
    src.mkdir()

    def add(i: int) -> subprocess.Popen:
        (src / f"bericht-{i}.md").write_text(article(i), "utf-8")
        return subprocess.Popen([str(RAG_BIN), "add", str(src / f"bericht-{i}.md"), *where], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    t = time.monotonic()  # one whole add (the first builds the index too), to know when to kill
    first = add(0)
    assert first.wait(300) == 0, first.stderr.read().decode()
    whole = time.monotonic() - t
    rnd = random.Random(366)
    outcomes = []
    for i in range(1, 21):
        proc = add(i)
        time.sleep(rnd.uniform(0.3, whole * 1.1))
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its parser child
        proc.wait(30)
        in_folder = (data / f"bericht-{i}.md").exists()
        in_index = f"bericht-{i}.md" in indexed_paths(index)  # (what a server following the index loads)
        assert in_folder == in_index, f"kill {i}: in the data folder {in_folder}, in the index {in_index}"
        outcomes.append(in_folder)
    print(f"one add takes {whole:.1f} s; after 20 kills: {sum(outcomes)} added, {20 - sum(outcomes)} not")

    settings = Settings(data_dir=data, index_dir=index)
    report = build(settings, load_embedder(settings))  # nothing half-done is left to heal
    assert report.added == [] and report.removed == [] and report.changed == []
    assert report.documents == 4 + sum(outcomes)
    done = subprocess.run([str(RAG_BIN), "add", str(src / "bericht-1.md"), *where], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # (already there, or added now)
    assert (done.returncode == 0) == (not outcomes[0]), done.stderr
    assert not [p for p in data.iterdir() if p.name.startswith(".adding-")]  # the killed adds' staged files went


# ============================================================================ rag add URL: one deadline


@pytest.fixture
def dripping_site() -> Iterator[tuple[str, list]]:
    """A web page whose server sends one byte every ``interval`` seconds (each read is quick)."""
    gone: list[float] = []

    class Drip(BaseHTTPRequestHandler):
        interval = 0.5

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            interval = float(self.path.rsplit("/", 1)[-1] or 0.5)
            body = b"<html><head><title>Druppel</title></head><body>" + b"<p>woord</p>" * 200 + b"</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(interval)
            except OSError:
                gone.append(time.monotonic())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", gone
    server.shutdown()
    server.server_close()


def test_a_dripping_page_ends_at_the_deadline(dripping_site, tmp_path):
    url, _ = dripping_site
    t = time.monotonic()
    with pytest.raises(AddRefused, match="no answer within 2 s") as e:
        stage_url(tmp_path / "data", url + "/page/0.3", MAX, timeout=2)
    took = time.monotonic() - t
    assert e.value.status == 504 and 1.9 < took < 3, took
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


@pytest.mark.slow
def test_rag_add_url_with_timeout_5_ends_at_the_deadline(dripping_site, tmp_path):
    """Issue 37's case: `rag add URL --timeout 5`, one byte every 2 s (it ran for more than 90 s)."""
    url, gone = dripping_site
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t = time.monotonic()
    done = subprocess.run([str(RAG_BIN), "add", url + "/page/2", "--timeout", "5", "--data", str(tmp_path / "data"),
                           "--index", str(tmp_path / "index")], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    took = time.monotonic() - t
    said = " ".join(done.stderr.split())
    assert done.returncode == 1 and "not added:" in said and "no answer within 5 s" in said, said
    assert took < 5 + 4, took  # the deadline, plus starting Python and importing the command
    print(f"rag add URL --timeout 5 against a page dripping a byte every 2 s: exit 1 after {took:.1f} s")


def test_the_postgres_store_commits_after_the_link(tmp_path, embedder, offline_settings, pg_url):
    """PostgreSQL: the file is linked inside the build's transaction, just before the commit; a link
    that fails rolls the whole build back."""
    from rag.index.postgres.store import PostgresStore
    from rag.index.stores import build_store, database
    from tests.conftest import pg_settings

    data = small_data(tmp_path / "data")
    settings = pg_settings(offline_settings, pg_url, data)
    build_store(settings, embedder)

    def documents() -> set[str]:
        db = database(settings)
        try:
            return set(PostgresStore(db, None).documents)
        finally:
            db.close()

    staged = stage_bytes(data, "bericht.md", article(3).encode(), MAX)
    seen = {}

    def publish():
        seen["indexed_before_link"] = "bericht" in documents()  # another connection: not committed yet
        staged.commit()

    build_store(settings, embedder, extra={"bericht.md": staged.tmp}, publish=publish)
    staged.discard()
    assert seen == {"indexed_before_link": False}
    assert "bericht" in documents() and (data / "bericht.md").exists()

    staged = stage_bytes(data, "tweede.md", article(4).encode(), MAX)
    (data / "tweede.md").write_text("# Ander\n\nEen ander bestand met die naam.\n", "utf-8")
    with pytest.raises(AddRefused, match="already in the data folder"):
        build_store(settings, embedder, extra={"tweede.md": staged.tmp}, publish=staged.commit)
    staged.discard()
    assert "tweede" not in documents()
