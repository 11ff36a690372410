"""Hostile files (issue 24): decompression bombs, trap page trees, 30,000 pages, deep nesting, broken
PDFs, Word paragraph and whitespace bombs, a zip bomb named .docx, web pages of scripts. Each is
skipped with its reason by ``rag index`` (the real command, with the shipped articles beside them,
exit 0) and refused with a 4xx by the upload route of a real server, which stays healthy and
within ~1 GB of its memory. The files are made at test time (tests/hostile_files.py)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from rag.ingest.add import AddRefused, store_bytes
from rag.ingest.documents import load_documents
from rag.ingest.limits import SkipFile
from rag.ingest.limits import ParseLimits
from rag.ingest.safe_parse import SafeParser
from tests.conftest import ARTICLES, REPO
from tests.doc_files import HOSPITAL_PAGE, make_pdf
from tests.hostile_files import SCRIPTED_ARTICLE, docx_paragraph_bomb, hostile_corpus
from tests.test_uploads import KEY, files_in, serve, upload

SCRIPT_TRACES = ("alert", "onload", "onerror", "onclick", "javascript:", "document.write", "ingevoegd-door-script")


# runs a command from a small process, so the children's peak RSS is the command's own (not a fork of pytest's)
MEASURED = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
            "print(f'PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); "
            "sys.exit(rc)")


@pytest.fixture(scope="module")
def corpus() -> dict[str, tuple[bytes, tuple[str, ...]]]:
    return hostile_corpus()


def _mentions(reason: str, needles: tuple[str, ...]) -> bool:
    return any(n in reason for n in needles)


def test_rag_index_skips_every_hostile_file_with_its_reason_and_indexes_the_rest(tmp_path, corpus, shipped_index):
    data, index = tmp_path / "data", tmp_path / "index"
    shutil.copytree(ARTICLES, data)
    shutil.copytree(shipped_index, index)  # the articles are already embedded: only the new files are read
    for name, (content, _) in corpus.items():
        (data / name).write_bytes(content)
    (data / "haven-nampo.html").write_bytes(SCRIPTED_ARTICLE)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", MEASURED, sys.executable, "-m", "rag.cli.main", "index", "--data", str(data),
                        "--index", str(index)], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "COLUMNS": "400", "RAG_PARSE_TIMEOUT": "60"})
    seconds = time.perf_counter() - t
    peak_mb = int(r.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0]) / 1024
    print(f"\nrag index over {len(corpus)} hostile files + the articles: {seconds:.1f} s, "
          f"peak RSS of the command (or its parser, the larger) {peak_mb:.0f} MB")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    lines = {ln.strip().split(": ", 1)[0]: ln.strip().split(": ", 1)[1] for ln in out.splitlines()
             if ": " in ln and ln.strip().split(": ", 1)[0] in corpus}
    for name, (_, needles) in corpus.items():
        assert name in lines, f"{name} not listed as skipped:\n{out[-3000:]}"
        assert _mentions(lines[name], needles), (name, lines[name])

    from rag.index.local.store import IndexStore

    store = IndexStore.load(index)
    paths = {d.path for d in store.documents.values()}
    assert {p.name for p in ARTICLES.iterdir() if p.suffix == ".md"} <= paths
    assert "haven-nampo.html" in paths and not paths & set(corpus)
    nampo = next(d for d in store.documents.values() if d.path == "haven-nampo.html")
    assert "nieuwe kade voor containerschepen" in nampo.text
    assert not [t for t in SCRIPT_TRACES if t in nampo.text]


def test_uploads_of_hostile_files_get_4xx_and_the_server_stays_healthy(tmp_path, corpus, shipped_index, embedder,
                                                                       dead_ollama_url):
    ctx, data = serve(tmp_path, shipped_index, embedder, dead_ollama_url, api_key=KEY)
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with ctx as url:
        before = files_in(data)
        for name, (content, needles) in corpus.items():
            t = time.perf_counter()
            r = upload(url, name, content)
            took = time.perf_counter() - t
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
            detail = r.json()["detail"]
            assert _mentions(detail, needles + ("is empty",)), (name, detail)
            if "too large once expanded" in detail:
                assert r.status_code == 413, (name, r.status_code)
            else:
                assert r.status_code == 422, (name, r.status_code, detail)
            print(f"{name}: {r.status_code} in {took:.2f} s: {detail[:100]}")
        assert files_in(data) == before  # nothing half-added
        r = upload(url, "haven-nampo.html", SCRIPTED_ARTICLE)
        assert r.status_code == 201, r.text
        doc = httpx.get(url + "/api/documents/haven-nampo", timeout=30).json()
        assert "nieuwe kade" in doc["text"] and not [t for t in SCRIPT_TRACES if t in doc["text"]]
        assert httpx.get(url + "/health", timeout=10).json()["status"] == "ok"
        hits = httpx.get(url + "/api/search", params={"q": "kolenmijn antraciet", "k": 3}, timeout=30)
        assert hits.status_code == 200 and hits.json()["results"]
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"server (this process) peak RSS {before_rss:.0f} MB before the uploads, {peak_rss:.0f} MB after")
    assert peak_rss - before_rss < 1024


def test_the_limits_are_settings(tmp_path):
    """Small limits (as RAG_PARSE_* settings give them) skip a file the defaults would read."""
    pdf = make_pdf([HOSPITAL_PAGE, ["Tweede pagina."], ["Derde pagina."]], title="Drie pagina's")
    (tmp_path / "drie.pdf").write_bytes(pdf)
    (tmp_path / "alineas.docx").write_bytes(docx_paragraph_bomb(3000))
    assert {d.path for d in load_documents(tmp_path).documents} == {"drie.pdf", "alineas.docx"}
    small = ParseLimits(max_pages=2, max_paragraphs=1000)
    skipped = {s.path: s.reason for s in load_documents(tmp_path, limits=small).skipped}
    assert "too many pages: 3 (at most 2" in skipped["drie.pdf"]
    assert "too many paragraphs: more than 1,000" in skipped["alineas.docx"]
    tiny = ParseLimits(expand_ratio=1, min_budget=100, max_text_chars=1000)
    with pytest.raises(AddRefused) as e:
        store_bytes(tmp_path / "data", "drie.pdf", pdf, 5_000_000, limits=tiny)
    assert e.value.status == 413 and "too large once expanded" in str(e.value)


def test_a_parser_that_runs_out_of_time_is_killed_and_the_next_file_gets_a_fresh_one():
    pdf = make_pdf([HOSPITAL_PAGE], title="Ziekenhuis")
    parser = SafeParser(ParseLimits(timeout=0.001))
    try:
        with pytest.raises(SkipFile, match="took longer than 0.001 s"):
            parser.extract("pdf", pdf)
        first = parser._proc
        assert first is None  # killed
        parser.limits = ParseLimits()
        title, text, _ = parser.extract("pdf", pdf)
        assert title == "Ziekenhuis" and "kinderziekenhuis" in text
    finally:
        parser.close()
