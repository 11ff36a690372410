"""Issue 25 point 4: a frozen PostgreSQL (every server process stopped with SIGSTOP: connections stay
open, nothing answers) makes /api/search answer 503 and /health answer "degraded" within
RAG_DB_TIMEOUT instead of hanging, and the server recovers by itself when the database thaws."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import pg_stop, start_pg

pytest.importorskip("pgserver", reason="the 'postgres' extra (pgserver) is not installed")
pytest.importorskip("psycopg", reason="the 'postgres' extra (psycopg) is not installed")
httpx = pytest.importorskip("httpx")

from tests.test_live_index import serve, until  # noqa: E402

Q = "Wie is Jihyun Park?"


def postgres_pids(pgdata: Path) -> list[int]:
    """The postmaster (postmaster.pid) and its children: the processes of this test's own server."""
    master = int((pgdata / "postmaster.pid").read_text().split()[0])
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            kids.append(int(stat.parent.name))
    return [master, *kids]


def test_a_frozen_database_gives_503_and_degraded_quickly_and_recovers(tmp_path):
    pg = start_pg(tmp_path / "pgdata")
    s = serve(tmp_path / "srv", RAG_STORE="postgres", RAG_DATABASE_URL=pg.get_uri(), RAG_DB_TIMEOUT="2")
    pids: list[int] = []
    try:
        ok = httpx.get(s.url + "/api/search", params={"q": Q}, timeout=30)
        assert ok.status_code == 200 and ok.json()["results"], ok.text
        assert httpx.get(s.url + "/health", timeout=30).json()["status"] == "ok"

        pids = postgres_pids(Path(pg.pgdata))
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        r = httpx.get(s.url + "/api/search", params={"q": Q}, timeout=60)
        search_s = time.monotonic() - t0
        assert r.status_code == 503, r.text
        assert "database" in r.json()["detail"], r.text
        t0 = time.monotonic()
        h = httpx.get(s.url + "/health", timeout=60)
        health_s = time.monotonic() - t0
        assert h.status_code == 200 and h.json()["status"] == "degraded", h.text
        assert h.json()["store"]["reachable"] is False
        print(f"frozen database (RAG_DB_TIMEOUT=2): /api/search 503 after {search_s:.1f} s, "
              f"/health degraded after {health_s:.1f} s")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    try:
        until(lambda: httpx.get(s.url + "/api/search", params={"q": Q}, timeout=30).status_code == 200,
              "recovery after the thaw", 30)
        assert httpx.get(s.url + "/health", timeout=30).json()["status"] == "ok"
    finally:
        s.stop()
        try:
            pg_stop(pg)
        except Exception:  # noqa: BLE001 - cleanup only: pgserver stops it at exit anyway
            pass
