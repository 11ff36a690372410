"""Hostile requests against a real ``rag serve`` (issue 37 item 1, issue 36 item 5).

* The reliability probe's body -- an unterminated JSON string of 64 KB of ``\\"`` pairs, which made the
  old JSON guard quadratic (30 s each, on the event loop) -- posted by ``--clients`` clients at once,
  ``--rounds`` times each, to /api/ask, /api/reindex (no key), /v1/chat/completions and a path that does
  not exist, while one client polls /health. Targets: /health p99 under 100 ms, every bad body a 4xx
  within 1 s.
* Over-large bodies sent in one go, without waiting for an answer (a raw socket): 10 MB to /api/ask and
  6 MB to /api/documents must get a 413 with a JSON body naming the limit (not a connection reset).

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.hostile_requests [--url URL] [--clients 4] [--rounds 100]

Without ``--url`` it starts ``rag serve`` from this checkout on a copy of data/articles (the index is
built in a temporary folder first). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

REPO = Path(__file__).resolve().parents[1]
BAD_BODY = b'"' + b'\\"' * 31990  # the probe's dos.json: 63,981 bytes, under the 64,000-byte body limit
PATHS = ["/api/ask", "/api/reindex", "/v1/chat/completions", "/api/no-such-path"]
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(work: Path) -> tuple[subprocess.Popen, str]:
    """``rag serve`` on a copy of the shipped articles, on a free loopback port; waits for /health."""
    data = work / "data"
    shutil.copytree(REPO / "data" / "articles", data)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}", "RAG_LLM_PROBE_TIMEOUT": "1"}
    env.pop("RAG_API_KEY", None)
    log = open(work / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data", str(data), "--index", str(work / "index")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited: {(work / 'serve.log').read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).json().get("status") == "ok":
                return proc, url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("rag serve did not become healthy within 600 s")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> str:
    return (f"n={len(ms)} p50 {statistics.median(ms):.1f} ms, p99 {pct(ms, 99):.1f} ms, "
            f"max {max(ms):.1f} ms")


def poll_health(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=60) as c:
        while not stop.is_set():
            t = time.perf_counter()
            c.get(url + "/health").raise_for_status()
            out.append((time.perf_counter() - t) * 1000)
            time.sleep(0.01)


def attack(url: str, client: int, rounds: int, out: list[tuple[str, int, float]]) -> None:
    with httpx.Client(timeout=120) as c:
        for r in range(rounds):
            path = PATHS[(client + r) % len(PATHS)]
            t = time.perf_counter()
            status = c.post(url + path, content=BAD_BODY, headers={"Content-Type": "application/json"}).status_code
            out.append((path, status, time.perf_counter() - t))


def all_at_once(url: str, path: str, body: bytes, ctype: str) -> tuple[int | str, dict | None]:
    """POST ``body`` in one sendall, without waiting for an answer; (status or the error, JSON body)."""
    u = urlparse(url)
    head = (f"POST {path} HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    try:
        with socket.create_connection((u.hostname, u.port)) as s:
            s.settimeout(60)
            s.sendall(head + body)
            raw = b"".join(iter(lambda: s.recv(65536), b""))
    except OSError as e:
        return type(e).__name__, None
    top, _, payload = raw.partition(b"\r\n\r\n")
    try:
        return int(top.split()[1]), json.loads(payload)
    except (IndexError, ValueError):
        return f"unreadable answer {raw[:80]!r}", None


def run(url: str, clients: int, rounds: int) -> bool:
    ok = True
    idle: list[float] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll_health, args=(url, stop, idle))
    poller.start()
    time.sleep(3)
    stop.set()
    poller.join()
    print(f"/health idle: {summary(idle)}")

    under: list[float] = []
    bad: list[tuple[str, int, float]] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll_health, args=(url, stop, under))
    poller.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    attackers = [threading.Thread(target=attack, args=(url, i, rounds, bad)) for i in range(clients)]
    for a in attackers:
        a.start()
    for a in attackers:
        a.join()
    took = time.perf_counter() - t0
    time.sleep(0.5)
    stop.set()
    poller.join()
    print(f"{clients} clients x {rounds} rounds of the {len(BAD_BODY):,}-byte \\\" body ({took:.1f} s):")
    print(f"  /health meanwhile: {summary(under)}")
    for path in PATHS:
        mine = [(s, t) for p, s, t in bad if p == path]
        if mine:
            statuses = sorted({s for s, _ in mine})
            print(f"  {path}: {len(mine)} bodies, status {statuses}, slowest {max(t for _, t in mine) * 1000:.0f} ms")
    slowest = max(t for _, _, t in bad)
    if pct(under, 99) >= 100:
        print("  MISSED: /health p99 >= 100 ms")
        ok = False
    if slowest >= 1 or any(not 400 <= s < 500 for _, s, _ in bad):
        print("  MISSED: a bad body took >= 1 s or got no 4xx")
        ok = False

    print("over-large bodies sent at once (raw socket):")
    boundary = "grens42"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"groot.md\"\r\n\r\n").encode() \
        + b"# Groot\n\n" + b"tekst " * MB + f"\r\n--{boundary}--\r\n".encode()
    for path, body, ctype in [("/api/ask", b'{"question": "' + b"x" * (10 * MB) + b'"}', "application/json"),
                              ("/api/documents", form, f"multipart/form-data; boundary={boundary}")]:
        t = time.perf_counter()
        status, answer = all_at_once(url, path, body, ctype)
        detail = (answer or {}).get("detail", "")
        print(f"  {len(body) / 1e6:.1f} MB to {path}: {status} in {(time.perf_counter() - t) * 1000:.0f} ms: {detail}")
        if status != 413 or not (answer or {}).get("limit"):
            print("  MISSED: no 413 with the limit")
            ok = False
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running server (default: start rag serve on a copy of data/articles)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()
    if args.url:
        ok = run(args.url.rstrip("/"), args.clients, args.rounds)
    else:
        work = Path(tempfile.mkdtemp(prefix="hostile-requests-"))
        proc, url = start_serve(work)
        try:
            ok = run(url, args.clients, args.rounds)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
