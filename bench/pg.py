"""The Postgres section of ``rag bench`` (issue 13), and the measurement behind the postgres store's
hybrid weights.

Two things, both against a private PostgreSQL 16 + pgvector started by ``pgserver`` in the work folder:

* ``pg_section(plan, settings, work)``: the postgres section of ``rag bench`` (bench/sections.py). At N synthetic chunks (100k and 1M in
  the full run, 20k with ``--quick``): load + HNSW build time, recall@10 against exact search and
  p50/p99 latency for pgvector and FAISS (``rag.index.postgres.bench``); then ``/api/search`` throughput with 1
  and 2 ``rag serve`` replicas on the shipped articles in one database, behind 8 clients.
* ``fusion_table(settings, work)``: retrieval-only ``run_eval`` on eval/qa.jsonl for the local and
  the postgres store (bm25 / dense / hybrid) and a grid of hybrid weights for both, from which
  ``rag.index.stores.POSTGRES_FUSION`` is chosen.

Run from a checkout::

    HF_HUB_OFFLINE=1 python -m bench.pg fusion            # the eval table (a few minutes)
    HF_HUB_OFFLINE=1 python -m bench.pg bench --quick     # the bench section alone, small
    HF_HUB_OFFLINE=1 python -m bench.pg bench --sizes 100000   # the full section at chosen sizes
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
GRID = (0.2, 0.3, 0.4, 0.5, 0.6)


def start_pg(folder: Path):
    import pgserver

    folder.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(folder, cleanup_mode="stop")


def create_database(server, name: str) -> str:
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return server.get_uri(database=name)


class CachedQueries:
    """The embedder with query vectors remembered (the grid asks the same questions many times)."""

    def __init__(self, embedder) -> None:
        self._e = embedder
        self._cache: dict[str, Any] = {}

    def embed_query(self, q: str):
        if q not in self._cache:
            self._cache[q] = self._e.embed_query(q)
        return self._cache[q]

    def __getattr__(self, name):
        return getattr(self._e, name)


# ============================================================================ fusion weights

def _row(report: dict, mode: str) -> dict[str, float]:
    r = report["modes"][mode]["retrieval"]
    return {key: round(r[key], 3) for key in ("hit@1", "hit@5", "mrr@10")}


def fusion_table(settings, work: Path, qa_path: Path = REPO / "eval" / "qa.jsonl", grid: Sequence[float] = GRID,
                 on_stage: Callable[[str], None] = print) -> dict[str, Any]:
    """bm25 / dense / hybrid for both stores, and hybrid over ``grid`` (bm25 weight; dense = 1 - w)."""
    from rag.embed.embedders import load_embedder
    from rag.eval.evaluation import EvalConfig, load_qa, run_eval
    from rag.index.postgres.store import PostgresStore
    from rag.retrieve.retriever import FusionParams, Retriever
    from rag.index.stores import build_store, database, open_store

    items = [it for it in load_qa(qa_path) if it.answerable]
    embedder = load_embedder(settings)
    cached = CachedQueries(embedder)
    server = start_pg(work / "pgdata")
    local_s = settings.model_copy(update={"store": "local", "index_dir": work / "index"})
    pg_s = settings.model_copy(update={"store": "postgres", "database_url": create_database(server, "fusion")})
    on_stage("building the local index and the postgres index of the shipped articles")
    build_store(local_s, embedder)
    build_store(pg_s, embedder)
    stores = {"local": open_store(local_s, embedder), "postgres": open_store(pg_s, embedder)}
    stores["postgres ts_rank_cd"] = PostgresStore(database(pg_s), embedder, ef_search=pg_s.hnsw_ef_search,
                                                  lexical="ts_rank_cd")

    def fusion(w: float) -> FusionParams:
        return FusionParams(bm25_weight=w, dense_weight=round(1 - w, 2), rrf_k=settings.rrf_k,
                            candidates=settings.candidates, method=settings.fusion)

    out: dict[str, Any] = {"questions": len(items), "model": embedder.model_id, "k": 5, "modes": {}, "grid": {}}
    default_w = settings.bm25_weight
    for name, store in stores.items():
        on_stage(f"eval: {name}, bm25/dense/hybrid (weights {default_w}/{settings.dense_weight})")
        rep = run_eval(items, Retriever(store, cached, fusion(default_w)), EvalConfig(k=5, compare=True, answers=False))
        out["modes"][name] = {m: _row(rep, m) for m in ("bm25", "dense", "hybrid")}
        if name == "postgres ts_rank_cd":
            continue
        out["grid"][name] = {}
        for w in grid:
            on_stage(f"eval: {name}, hybrid {w}/{round(1 - w, 2)}")
            rep = run_eval(items, Retriever(store, cached, fusion(w)), EvalConfig(k=5, mode="hybrid", answers=False))
            out["grid"][name][str(w)] = _row(rep, "hybrid")
    for store in stores.values():
        getattr(store, "db", None) and store.db.close()
    server.cleanup()
    return out


def print_fusion(t: dict[str, Any]) -> None:
    print(f"\n{t['questions']} answerable questions, model {t['model']}, k=5 (hit@1 / hit@5 / mrr@10)")
    for name, modes in t["modes"].items():
        print(f"  {name:22s} " + "   ".join(f"{m}: {v['hit@1']:.3f} / {v['hit@5']:.3f} / {v['mrr@10']:.3f}"
                                         for m, v in modes.items()))
    for name, rows in t["grid"].items():
        print(f"  hybrid weights, {name}:")
        for w, v in rows.items():
            print(f"    bm25 {w} / dense {round(1 - float(w), 2)}: {v['hit@1']:.3f} / {v['hit@5']:.3f} / {v['mrr@10']:.3f}")


# ============================================================================ the bench section

def sentence_vectors(settings, embedder=None, limit: int = 2000):
    """The shipped articles' sentences embedded by ``embedder`` (default: the settings' model): the
    anchors of the synthetic vectors (``rag.index.postgres.bench._mixed``), so they are shaped like real embeddings."""
    from rag.ingest.chunking import sentence_spans
    from rag.ingest.documents import load_documents
    from rag.embed.embedders import load_embedder

    texts = []
    for doc in load_documents(Path(settings.data_dir)).documents:
        texts += [doc.text[s:e] for s, e in sentence_spans(doc.text) if len(doc.text[s:e].split()) >= 4]
    return (embedder or load_embedder(settings)).embed_passages(list(dict.fromkeys(texts))[:limit])


def vector_figures(url: str, sizes: Sequence[int], on_stage: Callable[[str], None], anchors=None) -> list[dict[str, Any]]:
    """pgvector beside FAISS at each size (``rag.index.postgres.bench``)."""
    from rag.index.postgres.db import Database
    from rag.index.postgres.bench import pgvector_bench

    db = Database(url, statement_timeout_ms=None)
    try:
        out = []
        for n in sizes:
            on_stage(f"pgvector and FAISS HNSW on {n:,} synthetic chunks")
            out.append(pgvector_bench(db, n, anchors=anchors))
        return out
    finally:
        db.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    """One ``rag serve`` process on the postgres store."""

    def __init__(self, url: str, data_dir: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        e = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", RAG_STORE="postgres", RAG_DATABASE_URL=url,
                 RAG_DATA_DIR=str(data_dir), RAG_GENERATOR="extractive", OLLAMA_HOST="http://127.0.0.1:9")
        e.update(env or {})
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port)], env=e, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rag serve exited with {self.proc.returncode} (log: {self._log.name})")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if json.load(r).get("status") in ("ok", "degraded"):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"rag serve did not answer /health within {timeout:.0f} s (log: {self._log.name})")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def search(base: str, question: str, k: int = 5, timeout: float = 30.0) -> dict:
    query = urllib.parse.urlencode({"q": question, "k": k})
    with urllib.request.urlopen(f"{base}/api/search?{query}", timeout=timeout) as r:
        return json.load(r)


def throughput(bases: Sequence[str], questions: Sequence[str], clients: int = 8, seconds: float = 8.0) -> dict[str, Any]:
    """``clients`` threads asking /api/search round-robin over the replicas for ``seconds``."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    tag = os.urandom(3).hex()

    def client(c: int) -> None:
        i = c
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:  # a word no index holds makes every query new to the servers' query-vector caches
                search(bases[i % len(bases)], f"{questions[i % len(questions)]} zq{tag}x{i:x}")
                with lock:
                    lat.append(time.perf_counter() - t0)
            except OSError:
                with lock:
                    errors[0] += 1
            i += clients

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {"replicas": len(bases), "clients": clients, "requests": len(lat), "errors": errors[0],
            "per_s": round(len(lat) / wall, 1),
            "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None}


def api_throughput(url: str, settings, work: Path, questions: Sequence[str], seconds: float,
                   on_stage: Callable[[str], None]) -> list[dict[str, Any]]:
    """/api/search with 1 and 2 replicas on the shipped articles (built into the database first)."""
    from rag.embed.embedders import load_embedder
    from rag.index.stores import build_store

    s = settings.model_copy(update={"store": "postgres", "database_url": url})
    on_stage("building the shipped articles into the database")
    build_store(s, load_embedder(s))
    on_stage("starting 2 rag serve replicas on the database")
    replicas = [Replica(url, Path(s.data_dir), work / f"replica{i}.log") for i in range(2)]
    try:
        for r in replicas:
            r.wait_ready()
        for r in replicas:  # warm up
            search(r.base, questions[0])
        out = []
        for n in (1, 2):
            on_stage(f"/api/search, {n} replica(s), 8 clients, {seconds:.0f} s")
            out.append(throughput([r.base for r in replicas[:n]], questions, 8, seconds))
        return out
    finally:
        for r in replicas:
            r.stop()


def pg_section(plan, settings, work: Path, on_stage: Callable[[str], None] = print, embedder=None) -> dict[str, Any]:
    """The Postgres figures for ``rag bench`` (see the module doc); never raises: a failure is reported."""
    sizes = getattr(plan, "pg_sizes", None) or ((10_000,) if plan.quick else (100_000, 1_000_000))
    seconds = 3.0 if plan.quick else 20.0
    out: dict[str, Any] = {"sizes": list(sizes)}
    try:
        server = start_pg(Path(work) / "pgdata")
    except Exception as e:  # noqa: BLE001 - no pgserver / cannot start: say so, keep the rest of the bench
        return {"error": f"no PostgreSQL: {type(e).__name__}: {e}"}
    try:
        on_stage("embedding the articles' sentences (the synthetic vectors are blends of them)")
        try:
            anchors = sentence_vectors(settings, embedder)
        except Exception as e:  # noqa: BLE001 - no model: random vectors, said in the report
            anchors, out["anchors_error"] = None, f"{type(e).__name__}: {e}"
        out["vectors"] = vector_figures(create_database(server, "bench_vectors"), sizes, on_stage, anchors)
        from rag.eval.evaluation import load_qa

        questions = [it.question for it in load_qa(REPO / "eval" / "qa.jsonl") if it.answerable]
        out["api"] = api_throughput(create_database(server, "bench_api"), settings, Path(work), questions, seconds,
                                    on_stage)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        server.cleanup()
    return out


def print_pg(section: dict[str, Any], out: Callable[[str], None] = print) -> None:
    if not section:
        return
    kinds = {v.get("vectors", "random") for v in section.get("vectors", [])}
    out(f"Postgres (pgvector beside FAISS; synthetic vectors: {', '.join(sorted(kinds)) or '-'}):")
    for v in section.get("vectors", []):
        p, f = v["pgvector"], v["faiss_hnsw"]
        out(f"  {v['n']:>9,} chunks  pgvector: load {p['load_s']} s + HNSW {p['hnsw_build_s']} s, recall@10 "
            f"{p['recall@10']:.3f}, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms   |   FAISS HNSW: build {f['build_s']} s, "
            f"recall@10 {f['recall@10']:.3f}, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms  (ef_search {p['ef_search']})")
        for a, b in zip(p.get("sweep", []), f.get("sweep", [])):
            out(f"      ef_search {a['ef_search']:>4}: pgvector recall@10 {a['recall@10']:.3f}, p50 {a['p50_ms']} ms, "
                f"p99 {a['p99_ms']} ms   |   FAISS recall@10 {b['recall@10']:.3f}, p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms")
    for a in section.get("api", []):
        out(f"  /api/search, {a['replicas']} replica(s), {a['clients']} clients: {a['per_s']} req/s, "
            f"p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms, errors {a['errors']}")
    if section.get("error"):
        out(f"  error: {section['error']}")


def main(argv: Sequence[str]) -> int:
    import argparse

    from rag.config import Settings

    ap = argparse.ArgumentParser(prog="python -m bench.pg")
    ap.add_argument("what", choices=("fusion", "bench"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default=None, help="comma-separated chunk counts instead of the plan's (e.g. 100000)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="rag-pg-"))
    settings = Settings(data_dir=REPO / "data" / "articles")
    try:
        if a.what == "fusion":
            result = fusion_table(settings, work)
            print_fusion(result)
        else:
            from types import SimpleNamespace

            sizes = tuple(int(x) for x in a.sizes.split(",")) if a.sizes else None
            result = pg_section(SimpleNamespace(quick=a.quick, pg_sizes=sizes), settings, work)
            print_pg(result)
        if a.json:
            a.json.write_text(json.dumps(result, indent=2), "utf-8")
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
