"""Follow-ups are rewritten only when the question leans on the conversation (issue 9)."""

from __future__ import annotations

import pytest

from rag.answer.rewrite import needs_context, rewrite_by_rule

DAUGHTER = [{"role": "user", "content": "Hoe heet de dochter van Kim Jong-un?"},
            {"role": "assistant", "content": "Volgens Dennis Rodman heet ze Ju-ae [1]."}]


@pytest.mark.parametrize("question", [
    "En hoe oud is zij?", "Hoe oud is ze?", "Waarom?", "Hoeveel kost dat?", "Wanneer gebeurde het?",
    "Wat zei Breuker daarover?", "Hoe oud is zijn dochter?", "And how old is she?", "What did it cost?",
    "Wat betekent die raket voor Japan?",
])
def test_questions_that_refer_back_are_follow_ups(question):
    assert needs_context(question)


@pytest.mark.parametrize("question", [
    "Hoeveel kernkoppen heeft Noord-Korea?", "Wie is Jihyun Park?", "Wat zijn de gevolgen van het veto?",
    "Wat is het digitale front?", "Wie is de man die Kim rondleidde?", "Where does Jihyun Park live?",
    "Hoe heet de dochter van Kim Jong-un?",
    "Welke Russische minister van Defensie leidde Kim in juli rond over een Noord-Koreaanse wapenbeurs?",
])
def test_questions_that_stand_on_their_own_are_never_rewritten(question):
    assert not needs_context(question)
    assert rewrite_by_rule(question, DAUGHTER).standalone == question


def test_after_the_daughter_a_new_question_finds_the_weapons_and_a_follow_up_her_age(runtime):
    nukes = rewrite_by_rule("Hoeveel kernkoppen heeft Noord-Korea?", DAUGHTER)
    assert nukes.method == "none"
    top = runtime.retriever.search(nukes.queries[0], k=3)
    assert top[0].chunk.doc_id == "09-geavanceerder-wapentuig"
    assert not any("Rodman" in h.chunk.text for h in top[:1])

    age = rewrite_by_rule("En hoe oud is zij?", DAUGHTER)
    assert age.method == "rule" and "dochter" in age.standalone
    hits = runtime.retriever.search(age.queries[0], k=5)
    assert any("tussen de 10 en 11 jaar oud" in h.chunk.text for h in hits)
