"""What the language model reads (rag/answer/context.py): the sentences that answer, merged per article,
exact spans of the article, within the budget; whole chunks when asked; on the real index of the articles."""

from __future__ import annotations

import pytest

from rag.answer.context import FLAT_FACTOR, FLAT_GAP, budget_for, select_passages
from rag.answer.pipeline import Pipeline, Turn
from rag.llms.tokens import count_tokens
from rag.text import detect_language

QUESTIONS = ["Hoeveel kinderen heeft Jihyun Park?", "Wanneer vetoode Rusland het VN-panel?",
             "Which Russian missile is the Hwasong-11 related to?", "Waarom ging Park de politiek in?"]


@pytest.fixture(scope="module")
def pipeline(runtime, offline_settings):
    return Pipeline(runtime.retriever, None, offline_settings)


def _turn(pipeline: Pipeline, question: str) -> Turn:
    turn = Turn(question, detect_language(question), "extractive", [], False)
    pipeline._rewrite(turn)
    pipeline._retrieve(turn, 5, "hybrid")
    pipeline._decide(turn)
    return turn


@pytest.mark.parametrize("question", QUESTIONS)
def test_passages_are_exact_spans_of_their_articles(pipeline, runtime, question):
    passages = pipeline.passages_for(question, budget=300)
    assert passages
    for p in passages:
        doc = runtime.store.documents[p.chunk.doc_id]
        assert doc.text[p.chunk.start:p.chunk.end] == p.chunk.text
        assert not p.chunk.text.lstrip().startswith("#")  # headings are left out


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_budget_holds_and_the_best_sentence_is_in(pipeline, runtime, question):
    turn = _turn(pipeline, question)
    docs = runtime.store.documents
    passages = select_passages(turn.hits, turn.ranked, budget=150, count_tokens=count_tokens,
                               document_text=lambda d: docs[d].text)
    text = "\n".join(p.chunk.text for p in passages)
    assert turn.ranked[0].text in text
    whole = sum(count_tokens(h.chunk.text) for h in turn.hits)
    # the budget counts sentences; a sentence that does not fit is left out, the best one never
    assert sum(count_tokens(p.chunk.text) for p in passages) <= max(150, count_tokens(turn.ranked[0].text)) + 20
    assert sum(count_tokens(p.chunk.text) for p in passages) < whole / 3


def test_passages_of_one_article_that_touch_are_one_passage(pipeline, runtime):
    turn = _turn(pipeline, "Waarom ging Park de politiek in?")
    docs = runtime.store.documents
    passages = select_passages(turn.hits, turn.ranked, budget=2000, count_tokens=count_tokens,
                               document_text=lambda d: docs[d].text)
    by_doc: dict[str, list] = {}
    for p in passages:
        by_doc.setdefault(p.chunk.doc_id, []).append((p.chunk.start, p.chunk.end))
    for doc_id, spans in by_doc.items():
        spans.sort()
        text = docs[doc_id].text
        for (_, e1), (s2, _) in zip(spans, spans[1:]):
            assert s2 > e1 and text[e1:s2].strip(), "two passages that touch were not merged"
    # merged across the chunk boundary: a passage longer than any one chunk's share of it
    assert len({p.chunk.chunk_id for p in passages}) <= len(passages)


def test_without_the_article_text_the_chunks_are_enough(pipeline):
    turn = _turn(pipeline, "Hoeveel kinderen heeft Jihyun Park?")
    passages = select_passages(turn.hits, turn.ranked, budget=300, count_tokens=count_tokens)
    for p in passages:
        holder = next(h for h in turn.hits if h.chunk.doc_id == p.chunk.doc_id
                      and h.chunk.start <= p.chunk.start and p.chunk.end <= h.chunk.end + 400)
        assert holder is not None
    assert turn.ranked[0].text in "\n".join(p.chunk.text for p in passages)


def test_whole_chunks_remain_a_choice(pipeline):
    turn = _turn(pipeline, "Hoeveel kinderen heeft Jihyun Park?")
    assert pipeline.passages_for("Hoeveel kinderen heeft Jihyun Park?", budget=None) == turn.hits


def test_an_unsure_ranking_reads_more():
    assert budget_for(300, FLAT_GAP / 2) == round(300 * FLAT_FACTOR)
    assert budget_for(300, FLAT_GAP * 2) == 300 and budget_for(300, None) == 300
    assert budget_for(None, 0.0) is None


def test_off_topic_questions_give_the_model_nothing(pipeline):
    assert pipeline.passages_for("Wat is het recept voor appeltaart?") == []
