"""Sanity checks for the reference Q&A eval set (eval/qa.jsonl).

Stdlib + pytest only; no network. Evidence phrases are matched against the
article texts after collapsing whitespace and case-folding.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ARTICLES

REPO_ROOT = Path(__file__).resolve().parents[1]
QA_PATH = REPO_ROOT / "eval" / "qa.jsonl"
ARTICLES_DIR = ARTICLES  # the suite's copy of the shipped articles (tests/conftest.py)

REQUIRED_KEYS = {
    "id": str,
    "question": str,
    "answer": str,
    "evidence": list,
    "answerable": bool,
    "lang": str,
}
LANGS = {"nl", "en"}
TYPES = {"fact", "reason", "paraphrase", "multi", "unanswerable"}
MIN_TOTAL = 60
MIN_ENGLISH = 8
MIN_UNANSWERABLE = 8
MIN_WORDS, MAX_WORDS = 3, 12

MUST_HAVE = {
    "Hoeveel gewonden vielen er bij de aanval op Charkiv?": True,
    "Wie is Jihyun Park?": True,
    "Wat is de hoofdstad van Australië?": False,
}


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _load_rows() -> list[tuple[int, str, object]]:
    rows = []
    with QA_PATH.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, line, json.loads(line)))
            except json.JSONDecodeError as exc:
                rows.append((lineno, line, exc))
    return rows


@pytest.fixture(scope="module")
def rows():
    assert QA_PATH.is_file(), f"missing {QA_PATH}"
    return _load_rows()


@pytest.fixture(scope="module")
def items(rows):
    return [obj for _, _, obj in rows if isinstance(obj, dict)]


@pytest.fixture(scope="module")
def articles() -> dict[str, str]:
    texts = {p.stem: norm(p.read_text(encoding="utf-8")) for p in sorted(ARTICLES_DIR.glob("*.md"))}
    assert texts, f"no articles found in {ARTICLES_DIR}"
    return texts


def test_every_line_parses_as_object(rows):
    for lineno, line, obj in rows:
        assert not isinstance(obj, Exception), f"line {lineno} is not valid JSON: {obj}: {line[:80]!r}"
        assert isinstance(obj, dict), f"line {lineno} is not a JSON object: {line[:80]!r}"


def test_required_keys_and_types(items):
    for item in items:
        qid = item.get("id", "<no id>")
        for key, typ in REQUIRED_KEYS.items():
            assert key in item, f"{qid}: missing key {key!r}"
            assert isinstance(item[key], typ), (
                f"{qid}: key {key!r} should be {typ.__name__}, got {type(item[key]).__name__}"
            )
        assert item["question"].strip(), f"{qid}: empty question"
        assert item["answer"].strip(), f"{qid}: empty answer"
        assert item["lang"] in LANGS, f"{qid}: lang {item['lang']!r} not in {sorted(LANGS)}"
        for ph in item["evidence"]:
            assert isinstance(ph, str), f"{qid}: evidence entry {ph!r} is not a string"


def test_optional_keys(items, articles):
    for item in items:
        qid = item["id"]
        if "type" in item:
            assert item["type"] in TYPES, f"{qid}: type {item['type']!r} not in {sorted(TYPES)}"
            assert (item["type"] == "unanswerable") == (not item["answerable"]), (
                f"{qid}: type {item['type']!r} inconsistent with answerable={item['answerable']}"
            )
        if "doc_ids" in item:
            assert isinstance(item["doc_ids"], list), f"{qid}: doc_ids must be a list"
            for stem in item["doc_ids"]:
                assert stem in articles, f"{qid}: doc_id {stem!r} is not an article in {ARTICLES_DIR}"
            if not item["answerable"]:
                assert item["doc_ids"] == [], f"{qid}: unanswerable question has doc_ids {item['doc_ids']}"
            if item.get("type") == "multi":
                assert len(set(item["doc_ids"])) >= 2, f"{qid}: multi question needs >= 2 doc_ids"


def test_ids_unique_and_ordered(items):
    ids = [item["id"] for item in items]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"duplicate ids: {dupes}"
    expected = [f"q{n:03d}" for n in range(1, len(ids) + 1)]
    assert ids == expected, f"ids not sequential q001..: first mismatch {next((a, b) for a, b in zip(ids, expected) if a != b)}"


def test_questions_unique(items):
    dupes = [q for q, n in Counter(norm(i["question"]) for i in items).items() if n > 1]
    assert not dupes, f"duplicate questions: {dupes}"


def test_evidence_phrases_occur_in_articles(items, articles):
    for item in items:
        qid = item["id"]
        evidence = item["evidence"]
        if not item["answerable"]:
            assert evidence == [], f"{qid}: unanswerable question must have empty evidence, got {evidence}"
            continue
        assert evidence, f"{qid}: answerable question has no evidence"
        for ph in evidence:
            n_words = len(ph.split())
            assert MIN_WORDS <= n_words <= MAX_WORDS, (
                f"{qid}: evidence phrase has {n_words} words (want {MIN_WORDS}-{MAX_WORDS}): {ph!r}"
            )
            needle = norm(ph)
            hits = [stem for stem, text in articles.items() if needle in text]
            assert hits, f"{qid}: evidence phrase not found in any article: {ph!r}"
            doc_ids = item.get("doc_ids")
            if doc_ids:
                assert set(hits) & set(doc_ids), (
                    f"{qid}: evidence phrase {ph!r} found in {hits}, not in doc_ids {doc_ids}"
                )


def test_every_listed_document_has_evidence(items, articles):
    for item in items:
        qid = item["id"]
        for stem in item.get("doc_ids", []):
            text = articles.get(stem, "")
            assert any(norm(ph) in text for ph in item["evidence"]), (
                f"{qid}: no evidence phrase comes from listed document {stem!r}"
            )


def test_counts(items):
    total = len(items)
    english = sum(1 for i in items if i["lang"] == "en")
    unanswerable = sum(1 for i in items if not i["answerable"])
    assert total >= MIN_TOTAL, f"only {total} questions (want >= {MIN_TOTAL})"
    assert english >= MIN_ENGLISH, f"only {english} English questions (want >= {MIN_ENGLISH})"
    assert unanswerable >= MIN_UNANSWERABLE, f"only {unanswerable} unanswerable questions (want >= {MIN_UNANSWERABLE})"


def test_must_have_questions(items):
    by_question = {i["question"]: i for i in items}
    for question, answerable in MUST_HAVE.items():
        assert question in by_question, f"required question missing: {question!r}"
        item = by_question[question]
        assert item["answerable"] is answerable, (
            f"{item['id']}: {question!r} should have answerable={answerable}"
        )
