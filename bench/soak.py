"""Does the server's memory level off? (docs/memory.md)

Runs ``--minutes`` of ordinary use against a real ``rag serve`` started from this checkout, on a copy
of data/articles:

* asks: ``--clients`` threads asking the eval questions (and variations of them, so the query cache
  keeps missing) on ``/api/ask`` -- extractively and with the LLM, streamed and not -- and ``/v1``,
  with a search now and then; the LLM is the fake Ollama server of tests/fake_ollama.py (real HTTP,
  Ollama's protocol), answering a few words a millisecond apart, or none with ``--no-llm``;
* uploads: every ``--upload-every`` seconds a new article (Markdown, a web page or a PDF, so the
  parser child runs) over ``/api/documents``, and the oldest upload removed again (the archive keeps
  its size: memory that grows with it is not a leak);
* index reloads: every upload and removal swaps in a new index version; every ``--reindex-every``
  seconds ``/api/reindex`` after an article changed, and ``rag add`` from another process (the
  server follows the new version on disk).

Every ``--report-every`` seconds (a minute) it prints the server's RSS, the RSS of its children (the
parser processes), how many index versions its memory maps, and what was done; at the end the RSS at
10 minutes and at the end, and their ratio (issue 36: within 15 %). ``--json`` writes every sample.

    nice python -m bench.soak --minutes 30 --json soak.json

The server runs with the environment of this process (RAG_* settings apply), plus RAG_API_KEY,
OLLAMA_HOST (the fake, or a dead port) and its own data and index folders.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO / "data" / "articles"
QA = REPO / "eval" / "qa.jsonl"
KEY = "soak-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
WORDS = ("Pyongyang", "raket", "satelliet", "haven", "visserij", "kolen", "grens", "China", "verkiezingen", "leider",
         "toeristen", "Rason", "Sinpo", "ziekenhuis", "export", "Kim", "Zuid-Korea", "vluchteling", "kamp", "handel")


# ============================================================================ the server's memory

def rss_mb(pid: int) -> float:
    """VmRSS of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the parser processes and anything else the server started)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


def mapped_versions(pid: int) -> int:
    """How many index versions the process has mapped (the served one, and any it still holds)."""
    names = set()
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            names.update(part for part in line.split("/") if part.startswith("v-"))
    except OSError:
        pass
    return len(names)


# ============================================================================ the load

@dataclass
class Counts:
    asks: int = 0
    searches: int = 0
    uploads: int = 0
    removals: int = 0
    reindexes: int = 0
    cli_adds: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + n)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text[:300])


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in QA.read_text("utf-8").splitlines() if line.strip()]


def asker(url: str, stop: threading.Event, counts: Counts, seed: int) -> None:
    rnd = random.Random(seed)
    qs = questions()
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            q = rnd.choice(qs)
            if rnd.random() < 0.5:  # a variation: the query-embedding cache misses
                q = f"{q.rstrip('?')} {rnd.choice(WORDS)} {rnd.randint(1, 10**6)}?"
            try:
                roll = rnd.random()
                if roll < 0.15:
                    r = client.get("/api/search", params={"q": q, "k": 5})
                    what = "searches"
                elif roll < 0.3:
                    r = client.post("/v1/chat/completions", json={"model": "rag", "messages": [
                        {"role": "user", "content": q}], "stream": rnd.random() < 0.5})
                    what = "asks"
                else:
                    r = client.post("/api/ask", json={"question": q, "generator": rnd.choice(["extractive", "auto", "auto"]),
                                                      "stream": rnd.random() < 0.3})
                    what = "asks"
                if r.status_code >= 500:
                    counts.error(f"{r.status_code} {r.text}")
                counts.add(what)
            except httpx.HTTPError as e:
                if not stop.is_set():
                    counts.error(f"{type(e).__name__}: {e}")


def new_article(i: int, rnd: random.Random) -> tuple[str, bytes]:
    """An article of a few paragraphs as Markdown, a web page or a PDF."""
    paragraphs = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(30, 90))) + "." for _ in range(rnd.randint(3, 8))]
    title = f"Soak-bericht {i} over {rnd.choice(WORDS)}"
    kind = ("md", "html", "pdf")[i % 3]
    if kind == "md":
        return f"soak-{i}.md", (f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n").encode()
    if kind == "html":
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        return f"soak-{i}.html", (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
                                  f"{body}</article></body></html>").encode()
    sys.path.insert(0, str(REPO))
    from tests.doc_files import make_pdf

    return f"soak-{i}.pdf", make_pdf([[p] for p in paragraphs], title=title)


def uploader(url: str, data: Path, stop: threading.Event, counts: Counts, every: float, reindex_every: float,
             env: dict, index: Path) -> None:
    """Uploads and removals (each swaps in a new version), a re-index after a change, a `rag add` beside."""
    rnd = random.Random(36)
    live: list[str] = []
    i, next_reindex = 0, time.monotonic() + reindex_every
    with httpx.Client(base_url=url, timeout=600, headers=AUTH) as client:
        while not stop.wait(every):
            try:
                i += 1
                name, content = new_article(i, rnd)
                r = client.post("/api/documents", files={"file": (name, content)})
                if r.status_code == 201:
                    live.append(r.json()["document"]["doc_id"])
                    counts.add("uploads")
                elif r.status_code != 409:
                    counts.error(f"upload {r.status_code} {r.text}")
                if len(live) > 3:  # the archive keeps its size
                    r = client.delete(f"/api/documents/{live.pop(0)}")
                    counts.add("removals") if r.status_code == 200 else counts.error(f"remove {r.status_code} {r.text}")
                if time.monotonic() >= next_reindex:
                    next_reindex = time.monotonic() + reindex_every
                    changed = sorted(data.glob("*.md"))[rnd.randrange(3)]
                    changed.write_text(changed.read_text("utf-8") + f"\n\nBijgewerkt ({i}).\n", "utf-8")
                    r = client.post("/api/reindex")
                    counts.add("reindexes") if r.status_code == 200 else counts.error(f"reindex {r.status_code} {r.text}")
                    cli_add(data, index, env, i, rnd, counts)
            except httpx.HTTPError as e:
                if not stop.is_set():
                    counts.error(f"{type(e).__name__}: {e}")


def cli_add(data: Path, index: Path, env: dict, i: int, rnd: random.Random, counts: Counts) -> None:
    """`rag add` from another process: a new version on disk that the server follows (then removed again
    by the next `rag add`'s own article replacing it: the file goes, the next build drops it)."""
    src = Path(tempfile.mkdtemp(prefix="soak-add-"))
    try:
        for old in data.glob("cli-*.md"):
            old.unlink()
        name, content = f"cli-{i}.md", new_article(i * 3, rnd)[1]
        (src / name).write_bytes(content)
        done = subprocess.run([sys.executable, "-m", "rag.cli.main", "add", str(src / name), "--data", str(data),
                               "--index", str(index)], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        counts.add("cli_adds") if done.returncode == 0 else counts.error(f"rag add: {done.stderr[-300:]}")
    finally:
        shutil.rmtree(src, ignore_errors=True)


# ============================================================================ the run

def start_server(work: Path, port: int, env: dict) -> subprocess.Popen:
    log = open(work / "serve.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "rag.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data", str(work / "data"), "--index", str(work / "index")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"rag serve did not answer within {timeout:g} s")


def sample(proc: subprocess.Popen, t0: float, counts: Counts) -> dict:
    kids = children(proc.pid)
    return {"minute": round((time.monotonic() - t0) / 60, 2), "rss_mb": round(rss_mb(proc.pid), 1),
            "children": len(kids), "children_rss_mb": round(sum(rss_mb(k) for k in kids), 1),
            "mapped_versions": mapped_versions(proc.pid), "asks": counts.asks, "searches": counts.searches,
            "uploads": counts.uploads, "removals": counts.removals, "reindexes": counts.reindexes,
            "cli_adds": counts.cli_adds, "errors": len(counts.errors)}


def at_minute(samples: list[dict], minute: float) -> dict | None:
    later = [s for s in samples if s["minute"] >= minute - 0.01]
    return later[0] if later else None


def fake_llm():
    """The fake Ollama server, answering with the first sentence of the first passage it was given, cited."""
    sys.path.insert(0, str(REPO))
    import re

    from tests.fake_ollama import FakeOllama

    def reply(body: dict) -> str:
        user = body["messages"][-1]["content"]
        if '"standalone"' in body["messages"][0]["content"]:  # the rewrite call
            question = user.rsplit("Latest question:", 1)[-1].strip()
            return json.dumps({"standalone": question, "dutch": question})
        m = re.search(r'<passage n="1"[^>]*>\n(.*?)\n</passage>', user, re.S)
        return (" ".join(m.group(1).split()[:30]) if m else "Dat staat er niet in") + " [1]."

    fake = FakeOllama().start()
    fake.reply, fake.piece_delay = reply, 0.001
    return fake


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--upload-every", type=float, default=15.0, help="seconds between uploads")
    ap.add_argument("--reindex-every", type=float, default=120.0, help="seconds between /api/reindex + rag add")
    ap.add_argument("--report-every", type=float, default=60.0)
    ap.add_argument("--compare-at", type=float, default=10.0, help="the minute to compare the end with")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, default=None, help="kept when given (else a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="write the samples here")
    ap.add_argument("--no-llm", action="store_true", help="no LLM server: every answer is extractive")
    ap.add_argument("--articles", type=Path, default=ARTICLES, help="the articles to serve (copied; default data/articles)")
    args = ap.parse_args(argv)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="rag-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(args.articles, work / "data", dirs_exist_ok=True)
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    llm = None if args.no_llm else fake_llm()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "RAG_API_KEY": KEY, "OLLAMA_HOST": llm.url if llm else "http://127.0.0.1:9", "RAG_LLM_PROBE_TIMEOUT": "1",
           "TOKENIZERS_PARALLELISM": "false", "RAG_MAX_CONCURRENT_LLM": os.environ.get("RAG_MAX_CONCURRENT_LLM", "4")}
    if not (work / "index").exists():  # the server starts on an index, as it usually does
        subprocess.run([sys.executable, "-m", "rag.cli.main", "index", "--data", str(work / "data"), "--index",
                        str(work / "index")], env=env, cwd=REPO, check=True, capture_output=True, timeout=1800)
    proc = start_server(work, port, env)
    stop = threading.Event()
    counts = Counts()
    samples: list[dict] = []
    try:
        wait_ready(url, proc)
        t0 = time.monotonic()
        threads = [threading.Thread(target=asker, args=(url, stop, counts, n), daemon=True) for n in range(args.clients)]
        threads.append(threading.Thread(target=uploader, daemon=True, args=(
            url, work / "data", stop, counts, args.upload_every, args.reindex_every, env, work / "index")))
        for t in threads:
            t.start()
        samples.append(sample(proc, t0, counts))
        print(f"rag serve pid {proc.pid} on {url}, work folder {work}", flush=True)
        print(_line(samples[-1]), flush=True)
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(args.report_every, max(0.0, end - time.monotonic())))
            if proc.poll() is not None:
                raise SystemExit(f"rag serve exited with {proc.returncode} (see {work / 'serve.log'})")
            samples.append(sample(proc, t0, counts))
            print(_line(samples[-1]), flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=600)
    finally:
        stop.set()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if llm is not None:
            llm.stop()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    summary = _summary(samples, args.compare_at, counts)
    print(summary["text"])
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, **{k: v for k, v in summary.items() if k != "text"},
                                         "errors": counts.errors[:20]}, indent=2))
    return 0


def _line(s: dict) -> str:
    return (f"{s['minute']:6.1f} min  RSS {s['rss_mb']:7.1f} MB  children {s['children']} ({s['children_rss_mb']:.0f} MB)  "
            f"versions mapped {s['mapped_versions']}  asks {s['asks']} searches {s['searches']} uploads {s['uploads']} "
            f"removals {s['removals']} reindexes {s['reindexes']} rag-adds {s['cli_adds']} errors {s['errors']}")


def _summary(samples: list[dict], compare_at: float, counts: Counts) -> dict:
    first, mid, last = samples[0] if samples else None, at_minute(samples, compare_at), samples[-1] if samples else None
    out = {"start_rss_mb": first and first["rss_mb"], "compare_minute": compare_at, "compare_rss_mb": mid and mid["rss_mb"],
           "end_minute": last and last["minute"], "end_rss_mb": last and last["rss_mb"]}
    if mid and last and mid is not last:
        out["growth_pct"] = round(100 * (last["rss_mb"] - mid["rss_mb"]) / mid["rss_mb"], 1)
    text = [f"RSS: {out['start_rss_mb']} MB at the start, {out['compare_rss_mb']} MB at {compare_at:g} min, "
            f"{out['end_rss_mb']} MB at {out['end_minute']} min"]
    if "growth_pct" in out:
        text.append(f"growth from minute {compare_at:g} to the end: {out['growth_pct']:+.1f} %")
    if counts.errors:
        text.append(f"{len(counts.errors)} errors, first: {counts.errors[0]}")
    out["text"] = "\n".join(text)
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
