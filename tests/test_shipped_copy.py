"""The suite reads its own copy of the shipped articles (tests/conftest.py ARTICLES), never the user's
data/articles, where `rag add` and uploads write: a file added there cannot change a test's outcome."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.conftest import ARTICLES, REPO


def test_the_suite_reads_a_copy_holding_exactly_the_shipped_articles():
    manifest = dict(reversed(line.split(maxsplit=1)) for line in
                    (REPO / "tests" / "data" / "shipped_articles.sha256").read_text("utf-8").splitlines())
    assert ARTICLES.resolve() != (REPO / "data" / "articles").resolve()
    assert REPO not in ARTICLES.resolve().parents
    assert sorted(p.name for p in ARTICLES.iterdir()) == sorted(manifest)
    for p in ARTICLES.iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == manifest[p.name]
    # a `rag` subprocess or Settings() without --data reads the copy as well
    assert Path(os.environ["RAG_DATA_DIR"]) == ARTICLES
    from rag.config import Settings

    assert Settings().data_dir == ARTICLES
