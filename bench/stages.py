"""Where the time of one ``/api/search`` goes (issue 11): each stage timed on its own, in-process, on
the shipped articles with the server's default model, for unique questions (no cached query vector).

    HF_HUB_OFFLINE=1 python -m bench.stages [--n 60] [--json out.json]

Stages: HTTP + JSON (a ``GET /health``-sized round trip through uvicorn is measured by ``rag bench``;
here: FastAPI's validation and response serialisation through ``TestClient`` minus the search),
BM25 (tokenise + score), query embedding (engine threads: all cores, then one), FAISS, dense
similarities of BM25's candidates, fusion and hit assembly. Run it on a quiet machine (``uptime``
below 1.5); the figures are medians and p90 in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50_ms": round(1000 * statistics.median(values), 3),
            "p90_ms": round(1000 * values[int(0.9 * (len(values) - 1))], 3)}


def stages(n: int = 60) -> dict:
    from rag.config import Settings
    from rag.eval.evaluation import load_qa
    from rag.runtime import open_runtime

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp(prefix="rag-stages-")))
    rt = open_runtime(settings, build_if_missing=True)
    store, retriever, emb = rt.store, rt.retriever, rt.embedder
    engine = getattr(emb, "inner", emb)  # the BatchingEmbedder wraps the engine
    questions = [it.question for it in load_qa(REPO / "eval" / "qa.jsonl")]
    from bench.load import unique_question

    questions = [unique_question(questions, i) for i in range(n)]  # unique: nothing cached
    n_cand = max(5, retriever.fusion.candidates)
    t: dict[str, list[float]] = {k: [] for k in ("bm25", "embed_query", "faiss", "dense_of_bm25_candidates",
                                                 "fusion_and_hits", "whole_search")}
    for q in questions:
        s = time.perf_counter(); bm25 = dict(store.search_bm25(q, n_cand)); t["bm25"].append(time.perf_counter() - s)
        s = time.perf_counter(); qvec = engine.embed_query(q + " "); t["embed_query"].append(time.perf_counter() - s)
        s = time.perf_counter(); dense = dict(store.search_dense(qvec, n_cand)); t["faiss"].append(time.perf_counter() - s)
        s = time.perf_counter()
        dense.update(store.similarities(qvec, [i for i in bm25 if i not in dense]))
        t["dense_of_bm25_candidates"].append(time.perf_counter() - s)
        s = time.perf_counter()
        scores = retriever._convex(bm25, dense)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        store.get_chunks([i for i, _ in ranked])
        t["fusion_and_hits"].append(time.perf_counter() - s)
        s = time.perf_counter(); retriever.search(q + "  ", k=5); t["whole_search"].append(time.perf_counter() - s)
    out = {"questions": n, "chunks": len(store.chunks), "model": emb.model_id,
           "backend": getattr(emb, "backend", None), "load_average": list(os.getloadavg()),
           "stages": {k: _ms(v) for k, v in t.items()}}
    # the HTTP layer: FastAPI validation + response model + JSON, through the ASGI app (no network)
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(settings, runtime=rt)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        http, health = [], []
        for i, q in enumerate(questions[:n]):
            s = time.perf_counter(); r = c.get("/api/search", params={"q": q + f" http{i}", "k": 5})
            http.append(time.perf_counter() - s)
            r.raise_for_status()
            assert r.json()["results"], r.text
            s = time.perf_counter(); c.get("/health"); health.append(time.perf_counter() - s)
    out["stages"]["api_search_in_process"] = _ms(http)
    out["stages"]["health_in_process"] = _ms(health)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stages")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    r = stages(a.n)
    print(f"{r['questions']} unique questions, {r['chunks']} chunks, {r['model']} ({r['backend']}), "
          f"load average {r['load_average'][0]:.2f}")
    for name, v in r["stages"].items():
        print(f"  {name:<28} p50 {v['p50_ms']:>8.3f} ms   p90 {v['p90_ms']:>8.3f} ms")
    if a.json:
        a.json.write_text(json.dumps(r, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
