"""Issue 25 point 4: a frozen PostgreSQL (every server process stopped with SIGSTOP: connections stay
open, nothing answers) makes /api/search answer 503 within RAG_DB_TIMEOUT instead of hanging, /health
say "degraded", and the server recovers by itself when the database thaws. Issue 37 item 4: /health
never waits on the database meanwhile (it answers from the state checked in the background)."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
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


@contextmanager
def served_by_postgres(tmp_path: Path, db_timeout: str):
    """A PostgreSQL of this test's own and ``rag serve`` on it; yields (postgres, server), both stopped after."""
    pg = start_pg(tmp_path / "pgdata")
    s = serve(tmp_path / "srv", RAG_STORE="postgres", RAG_DATABASE_URL=pg.get_uri(), RAG_DB_TIMEOUT=db_timeout)
    try:
        yield pg, s
    finally:
        s.stop()
        try:
            pg_stop(pg)
        except Exception:  # noqa: BLE001 - cleanup only: pgserver stops it at exit anyway
            pass


@contextmanager
def frozen(pg):
    """Every process of ``pg`` stopped (SIGSTOP) for the block, continued (SIGCONT) after."""
    pids = postgres_pids(Path(pg.pgdata))
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_a_frozen_database_gives_503_and_degraded_quickly_and_recovers(tmp_path):
    with served_by_postgres(tmp_path, "2") as (pg, s):
        ok = httpx.get(s.url + "/api/search", params={"q": Q}, timeout=30)
        assert ok.status_code == 200 and ok.json()["results"], ok.text
        assert httpx.get(s.url + "/health", timeout=30).json()["status"] == "ok"

        with frozen(pg):
            t0 = time.monotonic()
            r = httpx.get(s.url + "/api/search", params={"q": Q}, timeout=60)
            search_s = time.monotonic() - t0
            assert r.status_code == 503, r.text
            assert "database" in r.json()["detail"], r.text
            # /health answers at once from the state checked in the background (issue 37 item 4), and says so soon
            h = until(lambda: (r := httpx.get(s.url + "/health", timeout=60)).json()["status"] == "degraded" and r,
                      "/health to say degraded", 5)
            health_s = time.monotonic() - t0
            assert h.status_code == 200 and h.json()["store"]["reachable"] is False
            print(f"frozen database (RAG_DB_TIMEOUT=2): /api/search 503 after {search_s:.1f} s, "
                  f"/health degraded {health_s:.1f} s after the freeze")
        until(lambda: httpx.get(s.url + "/api/search", params={"q": Q}, timeout=30).status_code == 200,
              "recovery after the thaw", 30)
        assert httpx.get(s.url + "/health", timeout=30).json()["status"] == "ok"


def test_health_never_waits_on_a_frozen_database(tmp_path):
    """Issue 37 item 4: /health answers from the store's state checked in the background, so with every
    PostgreSQL process stopped it still answers at once (RAG_DB_TIMEOUT is 5 s here) and soon says the
    database does not answer; after the thaw it says ok again."""
    with served_by_postgres(tmp_path, "5") as (pg, s), httpx.Client(base_url=s.url, timeout=30) as c:
        until(lambda: c.get("/health").json()["status"] == "ok", "a healthy start", 30)
        with frozen(pg):
            t_freeze = time.monotonic()
            times, down_after = [], None
            while time.monotonic() - t_freeze < 6:
                t0 = time.monotonic()
                h = c.get("/health")
                times.append(time.monotonic() - t0)
                assert h.status_code == 200, h.text
                if down_after is None and h.json()["status"] == "degraded":
                    down_after = time.monotonic() - t_freeze
                    assert h.json()["store"]["reachable"] is False
                    assert "database" in h.json()["store"]["detail"], h.json()["store"]
                time.sleep(0.05)
            times.sort()
            p50, p90, worst = times[len(times) // 2], times[int(len(times) * 0.9)], times[-1]
            print(f"frozen database: {len(times)} /health calls, p50 {p50 * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
                  f"max {worst * 1000:.1f} ms; 'degraded' after {down_after:.1f} s (RAG_DB_TIMEOUT=5)")
            assert down_after is not None and down_after < 3.5
            assert p90 < 0.100 and worst < 1.0
            assert c.get("/health").json()["status"] == "degraded"
        until(lambda: c.get("/health").json()["status"] == "ok", "ok after the thaw", 30)
