"""Load on a running server: ``client_load`` (``clients`` concurrent clients of unique questions on one
endpoint for some seconds, while one more client times /health), ``api_load`` (the plan's client counts on
each endpoint) and ``scaling`` (8 clients over 1, /health p99 at the most clients)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from bench.machine import loadavg
from bench.measure import percentiles


def p99(samples_ms: Sequence[float]) -> float | None:
    return round(float(np.percentile(np.asarray(samples_ms), 99)), 3) if len(samples_ms) else None


# Every load query is new to the server's query-vector cache (which outlives a run): question i of the
# eval set plus a number no other query of this process has had. A number is 2-3 tokens (the eval's
# questions average 15 tokens); the random letters used before cost 18, so they measured queries
# twice as long as anyone asks (docs/throughput.md).
_QUERY_NUMBERS = itertools.count(random.randrange(10**5))


def unique_question(questions: Sequence[str], i: int) -> str:
    return f"{questions[i % len(questions)]} {next(_QUERY_NUMBERS)}"


async def client_load(base: str, endpoint: str, clients: int, seconds: float, max_requests: int,
                questions: Sequence[str], health_every: float = 0.05) -> dict[str, Any]:
    """``clients`` clients send unique questions to ``endpoint`` for ``seconds``; meanwhile one more
    client asks for /health every ``health_every`` s (its latency: does the server stay responsive?)."""
    import httpx

    lat: list[float] = []
    health_lat: list[float] = []
    statuses: Counter = Counter()
    answers: Counter = Counter()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client, \
            httpx.AsyncClient(base_url=base, timeout=120) as prober:
        deadline = time.perf_counter() + seconds
        running = True

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= max_requests:
                    return
                q = unique_question(questions, i)
                t = time.perf_counter()
                try:
                    if endpoint == "/api/search":
                        r = await client.get(endpoint, params={"q": q, "k": 5, "mode": "hybrid"})
                    else:
                        r = await client.post(endpoint, json={"question": q, "k": 5, "generator": "extractive"})
                    status: int | str = r.status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                statuses[status] += 1
                if status == 200:
                    lat.append((time.perf_counter() - t) * 1000)
                    body = r.json()
                    if endpoint == "/api/search":
                        answers["with_results" if body.get("results") else "no_results"] += 1
                    else:
                        answers["abstained" if body.get("abstained") else f"answered_{body.get('generator')}"] += 1

        async def health() -> None:
            while running and time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    if (await prober.get("/health")).status_code == 200:
                        health_lat.append((time.perf_counter() - t) * 1000)
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(health_every)

        async def workers() -> None:
            nonlocal running
            await asyncio.gather(*(worker() for _ in range(clients)))
            running = False

        t0 = time.perf_counter()
        await asyncio.gather(workers(), health())
        elapsed = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    return {"endpoint": endpoint, "clients": clients, "requests": sum(statuses.values()), "ok": ok,
            "errors": {str(k): v for k, v in statuses.items() if k != 200}, "seconds": round(elapsed, 2),
            "rps": round(ok / elapsed, 1) if elapsed else None, "latency_ms": {**percentiles(lat), "p99": p99(lat)},
            "health_ms": {**percentiles(health_lat), "p99": p99(health_lat)}, "responses": dict(answers)}


def api_load(server, plan, questions: Sequence[str], on_stage: Callable[[str], None],
             endpoints: Sequence[str] = ("/api/search", "/api/ask"), workers: int = 1) -> list[dict[str, Any]]:
    runs = []
    asyncio.run(client_load(server.base, "/api/search", 1, 1.0, 50, questions))  # warm-up (first requests, caches)
    for endpoint in endpoints:
        for clients in plan.api_clients:
            on_stage(f"API: {endpoint} with {clients} client(s) for {plan.api_seconds:g} s"
                     + (f" ({workers} workers)" if workers > 1 else ""))
            run = asyncio.run(client_load(server.base, endpoint, clients, plan.api_seconds, plan.api_max_requests, questions))
            runs.append({**run, "workers": workers, "load_average": loadavg()})
    return runs


def scaling(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per endpoint and worker count: the 8-client rate over the 1-client rate, and /health p99 at the
    most clients."""
    out = []
    for key in dict.fromkeys((r["endpoint"], r.get("workers", 1)) for r in runs):
        rows = {r["clients"]: r for r in runs if (r["endpoint"], r.get("workers", 1)) == key}
        one, eight, most = rows.get(1), rows.get(8), rows[max(rows)]
        out.append({"endpoint": key[0], "workers": key[1],
                    "ratio_8_to_1": round(eight["rps"] / one["rps"], 2) if one and eight and one["rps"] else None,
                    "rps_8": eight["rps"] if eight else None, "single_client_p50_ms": one["latency_ms"]["p50"] if one else None,
                    "health_p99_ms_at_most_clients": most["health_ms"]["p99"], "most_clients": max(rows)})
    return out
