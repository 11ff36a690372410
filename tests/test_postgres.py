"""The PostgreSQL + pgvector store (issue 13) against a real PostgreSQL 16 started by pgserver.

One server per session (a private folder); every test gets its own database on it, except the
restart test, which stops and starts a server of its own.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ARTICLES, REPO, pg_restart, pg_settings, pg_stop, start_pg as _start

pgserver = pytest.importorskip("pgserver", reason="the 'postgres' extra (pgserver) is not installed")
psycopg = pytest.importorskip("psycopg", reason="the 'postgres' extra (psycopg) is not installed")

from rag.index.postgres.db import Database  # noqa: E402
from rag.errors import EmbeddingModelMismatch, IndexBusy, StoreUnavailable  # noqa: E402
from rag.index.postgres.store import PostgresStore  # noqa: E402
from rag.retrieve.retriever import FusionParams, Retriever  # noqa: E402
from rag.index.stores import POSTGRES_FUSION, build_store, open_store  # noqa: E402

CHARKIV = "Hoeveel gewonden vielen er bij de aanval op Charkiv?"
CHARKIV_EVIDENCE = "meer dan veertig gewonden"


# ----------------------------------------------------------------------------- schema and search

def test_migrations_are_recorded_and_idempotent(pg_url):
    db = Database(pg_url)
    try:
        assert db.migrate() == [1, 2, 3, 4]
        assert db.migrate() == []
        assert db.schema_version() == 4
        cols = db.run(lambda c: c.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'rag_chunks'").fetchall())
        assert {"start_offset", "end_offset", "tsv", "tlen"} <= {r[0] for r in cols}
    finally:
        db.close()


def test_build_then_hybrid_search_finds_the_charkiv_passage(shipped_pg, embedder):
    store = open_store(shipped_pg, embedder)
    retriever = Retriever(store, embedder, FusionParams())
    hits = retriever.search(CHARKIV, k=5, mode="hybrid")
    assert any(h.chunk.doc_id.startswith("09-geavanceerder-wapentuig") and CHARKIV_EVIDENCE in h.chunk.text for h in hits)
    lexical = retriever.search(CHARKIV, k=5, mode="bm25")
    assert lexical and CHARKIV_EVIDENCE in lexical[0].chunk.text
    # the article's publication date (rag/ingest/pubdate.py) is stored with its chunks (migration 003)
    assert {h.chunk.date for h in hits if h.chunk.doc_id.startswith("09-geavanceerder-wapentuig")} == {"2024-01-19"}
    # and where it was found (migration 004): a publication line in the text
    assert {h.chunk.date_source for h in hits if h.chunk.doc_id.startswith("09-geavanceerder-wapentuig")} == {"text"}


def test_chunks_keep_exact_offsets_and_the_index_objects_exist(shipped_pg, embedder):
    store = open_store(shipped_pg, embedder)
    docs = store.documents.values()
    assert len(docs) == len(store.documents) >= 9
    for d in docs:
        ids = store.chunk_indices(d.doc_id)
        assert ids
        for c in store.get_chunks(ids).values():
            assert d.text[c.start:c.end] == c.text
    indexes = store.db.run(lambda c: c.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'rag_chunks'").fetchall())
    defs = " ".join(r[0] for r in indexes)
    assert "hnsw (embedding vector_cosine_ops)" in defs and "gin (tsv)" in defs
    m = store.manifest
    assert m["fulltext"]["config"] == "dutch" and m["embedding"]["dimension"] == embedder.dimension


def test_an_index_from_another_model_is_refused_with_the_rebuild_message(shipped_pg, embedder):
    other = copy.copy(embedder)
    other.model_id = "some-other-model"
    with pytest.raises(EmbeddingModelMismatch, match="rag index --rebuild"):
        open_store(shipped_pg, other)


def test_the_text_search_configuration_follows_the_bm25_language(offline_settings, embedder, pg_url, tmp_path):
    data = tmp_path / "articles"
    data.mkdir()
    shutil.copy(ARTICLES / "07-dochter-kim-jong-un.md", data)
    s = pg_settings(offline_settings, pg_url, data).model_copy(update={"bm25_language": "english"})
    build_store(s, embedder)
    assert open_store(s, embedder).manifest["fulltext"]["config"] == "english"


# ----------------------------------------------------------------------------- incremental + replicas

def test_rows_from_before_date_sources_get_them_at_the_next_build(offline_settings, embedder, pg_url, tmp_path):
    """Chunks written before migration 004 (no date_source) are re-dated by the next build, without
    embedding anything again; the build after that writes nothing."""
    data = tmp_path / "articles"
    data.mkdir()
    for name in ("07-dochter-kim-jong-un.md", "01-jihyun-park-verkiezingskandidaat.md"):
        shutil.copy(ARTICLES / name, data)
    s = pg_settings(offline_settings, pg_url, data)
    build_store(s, embedder)
    db = Database(pg_url)
    try:
        db.run(lambda c: c.execute("UPDATE rag_chunks SET date_source = NULL"))
        again = build_store(s, embedder)
        assert again.wrote and again.embedded_chunks == 0 and again.unchanged == 2
        rows = set(db.run(lambda c: c.execute("SELECT doc_id, pub_date, date_source FROM rag_chunks").fetchall()))
        assert rows == {("07-dochter-kim-jong-un", "2024-01-24", "text"), ("01-jihyun-park-verkiezingskandidaat", None, None)}
    finally:
        db.close()
    assert build_store(s, embedder).wrote is False


def test_incremental_rebuild_and_a_replica_sees_it_without_restart(offline_settings, embedder, pg_built_url, tmp_path):
    data = tmp_path / "articles"
    shutil.copytree(ARTICLES, data)
    s = pg_settings(offline_settings, pg_built_url, data)
    first = build_store(s, embedder)
    replica = PostgresStore(Database(pg_built_url), embedder, refresh_seconds=0)  # checks the version on every call
    lazy = PostgresStore(Database(pg_built_url), embedder, refresh_seconds=3600)  # checks only when told
    v0 = replica.index_version
    kept = replica.chunk_indices("01-jihyun-park-verkiezingskandidaat")

    (data / "02-rusland-veto-vn-panel-sancties.md").unlink()
    changed = data / "03-spijkerbroek-censuur-tuinierprogramma.md"
    changed.write_text(changed.read_text("utf-8") + "\n\nDe zebravink zingt in de tuin van Pyongyang.\n", "utf-8")
    (data / "11-nieuw.md").write_text("# Walvissen\n\nEen bultrug zwom langs de kust van Wonsan.\n", "utf-8")
    second = build_store(s, embedder)

    assert second.added == ["11-nieuw.md"] and second.changed == [changed.name]
    assert second.removed == ["02-rusland-veto-vn-panel-sancties.md"]
    assert second.unchanged == first.documents - 2
    assert 0 < second.embedded_chunks < first.chunks
    assert replica.chunk_indices("01-jihyun-park-verkiezingskandidaat") == kept  # unchanged rows are kept
    assert replica.index_version == v0 + 1
    hits = Retriever(replica, embedder).search("bultrug Wonsan", k=3, mode="bm25")
    assert hits and hits[0].chunk.doc_id == "11-nieuw"
    assert "02-rusland-veto-vn-panel-sancties" not in replica.documents
    assert lazy.index_version == v0  # still the cached version
    assert lazy.refresh(force=True) and lazy.index_version == v0 + 1
    assert build_store(s, embedder).wrote is False  # up to date: nothing written, version unchanged
    assert replica.index_version == v0 + 1


# ----------------------------------------------------------------------------- crashes and concurrency

CHILD = r"""
import os, sys, time
from pathlib import Path
from rag.config import Settings
from rag.embed.embedders import load_embedder
from rag.index.stores import build_store
s = Settings(store="postgres", database_url=sys.argv[1], data_dir=Path(sys.argv[2]), embed_model=sys.argv[4])
go = Path(sys.argv[3])
def stage(msg):
    print(msg, flush=True)
    if msg.startswith("Embedding"):
        print("PAUSED", flush=True)
        while not go.exists():
            time.sleep(0.05)
report = build_store(s, load_embedder(s), on_stage=stage)
print("DONE", report.wrote, flush=True)
"""


def _child(url: str, data: Path, go: Path, model: str) -> subprocess.Popen:
    """An indexer in another process (the same model as the tests'), pausing before it embeds until ``go`` exists."""
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-c", CHILD, url, str(data), str(go), model], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)


def _wait_for(proc: subprocess.Popen, word: str) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.strip().startswith(word):
            return lines
    raise AssertionError(f"the indexer ended without printing {word}: {lines}")


def _change_one_file(data: Path) -> Path:
    f = data / "05-eerste-toeristen-sinds-2020.md"
    f.write_text(f.read_text("utf-8") + "\n\nEen okapi at bladeren in de dierentuin.\n", "utf-8")
    return f


def test_kill_9_during_a_build_leaves_the_previous_index_searchable(offline_settings, embedder, pg_built_url, tmp_path):
    data = tmp_path / "articles"
    shutil.copytree(ARTICLES, data)
    s = pg_settings(offline_settings, pg_built_url, data)
    build_store(s, embedder)
    store = open_store(s, embedder)
    before = (store.index_version, len(store.chunks), sorted(store.documents))
    _change_one_file(data)

    proc = _child(pg_built_url, data, tmp_path / "never", s.embed_model)
    try:
        _wait_for(proc, "PAUSED")  # inside the transaction: the old rows of the file are already deleted
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    assert (store.index_version, len(store.chunks), sorted(store.documents)) == before
    hits = Retriever(store, embedder).search(CHARKIV, k=5, mode="hybrid")
    assert any(CHARKIV_EVIDENCE in h.chunk.text for h in hits)
    assert not Retriever(store, embedder).search("okapi", k=3, mode="bm25")
    # the lock died with the process: the next build runs at once and brings the change in
    report = build_store(s, embedder, wait=False)
    assert report.changed == ["05-eerste-toeristen-sinds-2020.md"]
    assert Retriever(store, embedder).search("okapi", k=3, mode="bm25")


def test_two_indexers_are_serialised_by_the_advisory_lock(offline_settings, embedder, pg_built_url, tmp_path):
    data = tmp_path / "articles"
    shutil.copytree(ARTICLES, data)
    s = pg_settings(offline_settings, pg_built_url, data)
    build_store(s, embedder)
    _change_one_file(data)
    go = tmp_path / "go"
    proc = _child(pg_built_url, data, go, s.embed_model)
    try:
        _wait_for(proc, "PAUSED")  # the child holds the build lock
        with pytest.raises(IndexBusy, match="another indexer"):
            build_store(s, embedder, wait=False)
        messages: list[str] = []
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(r=build_store(s, embedder, on_stage=messages.append)))
        t.start()
        while not any("waiting" in m for m in messages):
            assert t.is_alive(), result
            time.sleep(0.05)
        go.touch()  # let the first indexer finish
        assert _wait_for(proc, "DONE")[-1] == "DONE True"
        t.join()
    finally:
        go.touch()
        proc.kill()
    second = result["r"]
    assert second.waited_seconds > 0
    assert second.wrote is False and second.unchanged == second.documents  # the first one did the work
    store = open_store(s, embedder)
    assert store.index_version == 2 and Retriever(store, embedder).search("okapi", k=3, mode="bm25")


# ----------------------------------------------------------------------------- database down and back

def test_database_stop_and_restart_under_a_running_store(offline_settings, embedder, tmp_path):
    server = _start(tmp_path / "pgdata")
    data = tmp_path / "articles"
    data.mkdir()
    shutil.copy(ARTICLES / "09-geavanceerder-wapentuig.md", data)
    s = pg_settings(offline_settings, server.get_uri(), data)
    build_store(s, embedder)
    store = open_store(s, embedder)
    retriever = Retriever(store, embedder)
    assert retriever.search(CHARKIV, k=5, mode="hybrid")
    pg_stop(server)
    try:
        with pytest.raises(StoreUnavailable, match="does not answer"):
            retriever.search(CHARKIV, k=5, mode="hybrid")
        with pytest.raises(StoreUnavailable):
            store.refresh(force=True)
    finally:
        pg_restart(server)
    try:
        hits = retriever.search(CHARKIV, k=5, mode="hybrid")  # the same objects, no restart
        assert any(CHARKIV_EVIDENCE in h.chunk.text for h in hits)
    finally:  # pgserver only stops the postmaster it started itself
        store.db.close()
        pg_stop(server)


def test_no_database_url_is_a_clear_error(offline_settings, embedder):
    s = offline_settings.model_copy(update={"store": "postgres", "database_url": None})
    with pytest.raises(Exception, match="RAG_DATABASE_URL"):
        open_store(s, embedder)


# ----------------------------------------------------------------------------- eval floors

FLOORS_PG = REPO / "eval" / "floors_postgres.json"


def test_the_eval_set_meets_the_postgres_floors(shipped_pg, embedder):
    """Retrieval on eval/qa.jsonl through the postgres store with its own hybrid weights
    (rag.index.stores.fusion_settings) stays above the floors written down in eval/floors_postgres.json."""
    import json

    from rag.eval.evaluation import EvalConfig, load_qa, run_eval
    from rag.eval.floors import check_floors
    from rag.runtime import open_runtime

    rt = open_runtime(shipped_pg, embedder=embedder)
    assert (rt.retriever.fusion.bm25_weight, rt.retriever.fusion.dense_weight) == tuple(POSTGRES_FUSION.values())
    report = run_eval(load_qa(REPO / "eval" / "qa.jsonl"), rt.retriever,
                      EvalConfig(k=5, mode="hybrid", compare=True, answers=False))
    floors = json.loads(FLOORS_PG.read_text("utf-8"))
    assert floors["min"] and report["n_answerable"] == floors["measured_with"]["answerable"]
    assert check_floors(report, floors) == []


# ----------------------------------------------------------------------------- rag info

def test_rag_info_describes_the_index_in_the_database(shipped_pg):
    rag = Path(sys.executable).with_name("rag")
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAG_STORE="postgres", RAG_DATABASE_URL=shipped_pg.database_url,
               RAG_DATA_DIR=str(ARTICLES), OLLAMA_HOST="http://127.0.0.1:9", RAG_LLM_PROBE_TIMEOUT="1", COLUMNS="200")
    done = subprocess.run([str(rag), "info"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    n_docs = len(list(ARTICLES.glob("*.md")))
    out = " ".join(done.stdout.split())  # rich wraps long lines (the database URL's length varies with the path)
    assert f"{n_docs} documents" in out and "index version" in out
    assert "pgvector hnsw" in out and "another embedding model" not in out
    assert "BM25 weight 0.3, dense weight 0.7" in out


def test_the_vector_bench_reports_recall_at_the_stores_ef_search_and_a_sweep(pg_url):
    """rag bench's Postgres section (rag.index.postgres.bench): pgvector and FAISS HNSW against exact search, at the
    stores' ef_search (Settings.hnsw_ef_search) and at the sweep's values; more ef_search, no less recall."""
    from rag.config import Settings
    from rag.index.postgres.bench import pgvector_bench

    ef = Settings().hnsw_ef_search
    db = Database(pg_url, statement_timeout_ms=None)
    try:
        r = pgvector_bench(db, 3000, n_queries=20, ef_search=ef, sweep=(10, 400))
    finally:
        db.close()
    for engine in ("pgvector", "faiss_hnsw"):
        e = r[engine]
        assert e["ef_search"] == ef and 0.0 < e["recall@10"] <= 1.0 and e["p50_ms"] > 0
        by_ef = {s["ef_search"]: s["recall@10"] for s in e["sweep"]}
        assert sorted(by_ef) == sorted({10, ef, 400}) and by_ef[ef] == e["recall@10"]
        assert by_ef[400] >= by_ef[10] and by_ef[400] > 0.9, by_ef  # at 3,000 vectors ef 400 is nearly exact
    assert r["pgvector"]["hnsw_build_s"] > 0 and r["vectors"] == "random"


def test_synthetic_vectors_shaped_like_the_articles_embeddings(embedder):
    """The scale bench's vectors are blends of real sentence embeddings: unit length, in the narrow cone
    that text embeddings fill (far from random vectors, which are nearly orthogonal to each other)."""
    import numpy as np

    from rag.index.postgres.bench import _mixed, _unit

    anchors = np.asarray(embedder.embed_passages([
        "Noord-Korea lanceerde een raket.", "Jihyun Park is kandidaat bij de verkiezingen.",
        "Rusland kocht Noord-Koreaanse munitie.", "De dochter van Kim Jong-un verscheen in het openbaar."]))
    rng = np.random.default_rng(1)
    mixed, random = _mixed(rng, 500, anchors), _unit(rng, 500, anchors.shape[1])
    assert np.allclose(np.linalg.norm(mixed, axis=1), 1.0, atol=1e-5)
    cos_mixed = (mixed[:250] * mixed[250:]).sum(1).mean()
    cos_random = (random[:250] * random[250:]).sum(1).mean()
    assert cos_mixed > 0.7 and abs(cos_random) < 0.05, (cos_mixed, cos_random)
