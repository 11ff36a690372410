"""Chunk budgets that hold (issue 37 item 2): a file's text and its passages are bounded in proportion
to the file, with a small floor, so a file of a few KB can never become hundreds of passages.

The chunk bombs of the hostile corpus (tests/hostile_files.py: a repetitive-text PDF, form XObjects
that draw each other, a Word file of one run repeated) are skipped with their reason; no file of the
corpus under 10 KB yields more than 200 passages (real parser child process, real tokenizer); and the
passage budget itself is enforced by the build, for the local and the PostgreSQL store."""

from __future__ import annotations

import shutil

import pytest

from rag.ingest.chunking import chunk_document
from rag.ingest.documents import load_documents
from rag.ingest.limits import ParseLimits, SkipTooLarge
from rag.ingest.safe_parse import SafeParser
from rag.schema import Document
from tests.conftest import ARTICLES
from tests.hostile_files import docx_repeated_runs, drawing_xobjects_pdf, hostile_corpus, repetitive_text_pdf

KINDS = {".pdf": "pdf", ".docx": "docx", ".html": "html"}


def test_the_default_budgets_grow_with_the_file_from_a_small_floor():
    limits = ParseLimits()
    assert limits.max_passages(3_700) == 100 and limits.max_passages(10 * 1024) == 160 <= 200
    assert limits.max_passages(5_000_000) == 78_125  # a 5 MB report is not held back
    assert limits.text_budget(3_700) == 37_000 and limits.text_budget(1_000) == 20_000
    assert limits.budget(2_000) == 256 * 1024  # the decompression floor (was 1 MB)


@pytest.mark.parametrize("make, size_under", [(repetitive_text_pdf, 4_000), (drawing_xobjects_pdf, 5_000),
                                              (docx_repeated_runs, 4_000)])
def test_each_chunk_bomb_is_a_few_kb_and_is_skipped_with_its_reason(make, size_under):
    data = make()
    kind = "docx" if make is docx_repeated_runs else "pdf"
    assert len(data) < size_under
    with SafeParser() as parser, pytest.raises(SkipTooLarge, match="too large once expanded"):
        parser.extract(kind, data)
    # ... while under the old limits (1 MB floor, no text budget) the same file expands 50 to 200 times
    old = ParseLimits(min_budget=1_000_000, text_ratio=50, min_text_chars=1_000_000)
    with SafeParser(old) as parser:
        _, text, _ = parser.extract(kind, data)
    print(f"{make.__name__}: {len(data):,} bytes -> {len(text):,} characters under the old limits")
    assert len(text) > 50 * len(data)


def test_no_hostile_file_under_10_kb_yields_more_than_200_passages(embedder):
    counts = {}
    corpus = {**hostile_corpus(), "net-binnen-budget.pdf": (repetitive_text_pdf(lines=220), ())}  # 19K characters:
    with SafeParser() as parser:  # ... read, at the edge of its text budget
        for name, (data, _) in corpus.items():
            kind = KINDS.get(name[name.rfind("."):])
            if len(data) >= 10 * 1024 or kind is None:
                continue
            try:
                title, text, meta = parser.extract(kind, data)
            except Exception as e:  # noqa: BLE001 - skipped (SkipFile): no passages at all
                counts[name] = (0, str(e)[:60])
                continue
            doc = Document(doc_id="x", path=name, title=title or name, text=text, metadata=meta)
            counts[name] = (len(chunk_document(doc, embedder.count_tokens, embedder.max_tokens, 200, 40)), "read")
    for name, (n, how) in sorted(counts.items()):
        print(f"{name}: {n} passages ({how})")
    assert {"herhaalde-tekst.pdf", "tekenende-xobjects.pdf", "herhaalde-runs.docx"} <= set(counts)
    assert counts["net-binnen-budget.pdf"][0] > 0
    assert max(n for n, _ in counts.values()) <= 200


def test_a_document_over_its_passage_budget_is_refused_with_the_reason(embedder):
    text = (ARTICLES / "01-jihyun-park-verkiezingskandidaat.md").read_text("utf-8")
    doc = Document(doc_id="park", path="park.md", title="Park", text=text)
    passages = len(chunk_document(doc, embedder.count_tokens, embedder.max_tokens, 200, 40))
    assert passages > 3
    tight = ParseLimits(min_passages=3, passage_bytes=1_000_000)
    with pytest.raises(SkipTooLarge) as e:
        chunk_document(doc, embedder.count_tokens, embedder.max_tokens, 200, 40, tight, len(text.encode()))
    assert f"{passages} passages from a file of" in str(e.value) and "at most 3" in str(e.value)
    assert len(chunk_document(doc, embedder.count_tokens, embedder.max_tokens, 200, 40, ParseLimits(),
                              len(text.encode()))) == passages  # the default budget lets a real article through


def _two_articles(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    long_one = "01-jihyun-park-verkiezingskandidaat.md"
    shutil.copy(ARTICLES / long_one, data / long_one)
    (data / "kort.md").write_text("# Kort\n\nDe haven van Nampo krijgt een nieuwe kade.\n", "utf-8")
    return data, long_one


def test_the_local_build_skips_a_file_over_its_passage_budget_and_keeps_the_rest(tmp_path, embedder):
    from rag.index.local.indexer import IndexParams, build_index
    from rag.index.local.store import IndexStore

    data, long_one = _two_articles(tmp_path)
    params = IndexParams(target_tokens=200, overlap_tokens=40,
                         parse_limits=ParseLimits(min_passages=3, passage_bytes=1_000_000))
    report = build_index(data, tmp_path / "index", embedder, params)
    reasons = {s.path: s.reason for s in report.skipped}
    assert "passages from a file of" in reasons[long_one], reasons
    assert [d.path for d in IndexStore.load(tmp_path / "index").documents.values()] == ["kort.md"]
    again = build_index(data, tmp_path / "index", embedder, params)  # the same folder: nothing to do
    assert not again.wrote and {s.path for s in again.skipped} == {long_one}
    assert load_documents(data).sizes[long_one] == (data / long_one).stat().st_size


def test_the_postgres_build_skips_a_file_over_its_passage_budget(tmp_path, embedder, pg_url):
    from rag.index.local.indexer import IndexParams
    from rag.index.postgres.db import Database
    from rag.index.postgres.indexer import build_postgres
    from rag.index.postgres.store import PostgresStore

    data, long_one = _two_articles(tmp_path)
    params = IndexParams(target_tokens=200, overlap_tokens=40,
                         parse_limits=ParseLimits(min_passages=3, passage_bytes=1_000_000))
    db = Database(pg_url)
    try:
        report = build_postgres(db, data, embedder, params)
        assert "passages from a file of" in {s.path: s.reason for s in report.skipped}[long_one]
        assert report.added == ["kort.md"]
        assert [d.path for d in PostgresStore(db, embedder).documents.values()] == ["kort.md"]
    finally:
        db.close()
