"""Chunking: sentence-aware, sized in the model's tokens, exact offsets."""

import pytest

from rag.ingest.chunking import chunk_document, chunk_spans, sentence_spans
from rag.ingest.documents import load_documents
from tests.conftest import ARTICLES


def sentences(text):
    return [text[s:e] for s, e in sentence_spans(text)]


def test_sentence_splitting_respects_abbreviations_numbers_and_quotes():
    text = ("Dit is o.a. een test van dr. Jansen. Het kostte 3.2 miljoen, bijv. voor J. Park. "
            "Hij zei: „Ga weg. Nu!” Daarna ging hij naar huis? Ja.\n\n# Kop zonder punt\nNieuwe alinea.")
    assert sentences(text) == [
        "Dit is o.a. een test van dr. Jansen.",
        "Het kostte 3.2 miljoen, bijv. voor J. Park.",
        "Hij zei: „Ga weg. Nu!”",
        "Daarna ging hij naar huis?",
        "Ja.",
        "# Kop zonder punt",
        "Nieuwe alinea.",
    ]


def test_quote_ending_a_sentence_stays_attached():
    text = "„We hadden niet eens schoenen!” vertelt ze. Daarna zweeg ze."
    assert sentences(text) == ["„We hadden niet eens schoenen!” vertelt ze.", "Daarna zweeg ze."]


def words(text):
    return len(text.split())


def test_chunks_are_exact_slices_with_overlap_and_limit():
    text = " ".join(f"Zin nummer {i} heeft precies zeven woorden." for i in range(40))
    spans = chunk_spans(text, words, max_tokens=30, target_tokens=30, overlap_tokens=7)
    assert len(spans) > 5
    for (s, e), (s2, _) in zip(spans, spans[1:]):
        assert s2 < e  # neighbours overlap
        assert s2 > s  # and always move forward
    for s, e in spans:
        assert words(text[s:e]) <= 30
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_overlong_sentence_and_giant_word_are_cut_not_truncated():
    text = "begin " + "woord " * 100 + "X" * 500 + " einde."
    spans = chunk_spans(text, lambda t: max(len(t.split()), len(t) // 50), max_tokens=20)
    covered = "".join(text[s:e] for s, e in spans).replace(" ", "")
    assert covered == text.replace(" ", "")  # nothing lost
    assert all(max(len(text[s:e].split()), (e - s) // 50) <= 20 for s, e in spans)


def test_shipped_articles_round_trip_and_fit_the_model(embedder):
    docs = load_documents(ARTICLES).documents
    total = 0
    for doc in docs:
        chunks = chunk_document(doc, embedder.count_tokens, embedder.max_tokens, 250, 48)
        assert chunks, doc.doc_id
        for c in chunks:
            assert doc.text[c.start:c.end] == c.text
            assert embedder.count_tokens(c.text) <= embedder.max_tokens
            assert c.doc_id == doc.doc_id and c.title == doc.title
        # every non-space character of the article is in some chunk
        covered = set()
        for c in chunks:
            covered.update(range(c.start, c.end))
        assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace()), doc.doc_id
        total += len(chunks)
    assert total >= len(docs)


def test_model_limit_holds_even_when_target_is_larger(embedder):
    doc = load_documents(ARTICLES).documents[0]
    chunks = chunk_document(doc, embedder.count_tokens, max_tokens=40, target_tokens=1000)
    assert len(chunks) > 10
    assert max(embedder.count_tokens(c.text) for c in chunks) <= 40


def test_bad_limit_is_refused():
    with pytest.raises(ValueError):
        chunk_spans("tekst", words, max_tokens=0)
