"""The sentence check (rag/answer/verify.py, facts.py, question.py, degenerate.py): the failures real small
models and the extractive answer showed, on the real index of the shipped articles."""

from __future__ import annotations

import pytest

from rag.answer.degenerate import (LONGEST_SENTENCE, TAIL_WINDOW, LoopGuard, copied_passage, dedupe_sentences,
                                   degenerate)
from rag.answer.facts import months, name_in, name_part_in, names, numbers
from rag.answer.pipeline import Pipeline
from rag.answer.question import asked, holds_kind


# ----------------------------------------------------------------------------- facts
@pytest.mark.parametrize("text, value", [
    ("vijftienduizend kilometer", 15000), ("achttien uur", 18), ("tweeënzestig mensen", 62),
    ("15.000 soldaten", 15000), ("15,000 soldiers", 15000), ("1,5 miljard dollar", 1.5e9), ("Park (56)", 56),
    ("twenty-five years", 25), ("honderdvijftig", 150), ("drieduizend", 3000)])
def test_numbers_are_values_in_both_languages(text, value):
    assert value in numbers(text)


def test_articles_and_vague_amounts_are_not_numbers():
    assert numbers("een man en één vrouw, one day") == set()
    assert numbers("honderdduizenden Noord-Koreanen") == set()


def test_months_in_both_languages():
    assert months("op 2 mei") == {5} and months("May 2, 2024") == {5} and months("in augustus") == {8}
    assert months("zij mag het niet, may we?") == set()


def test_names_and_their_dutch_and_english_forms():
    assert names("Park was born in 1999.") == ["park"]
    assert names("De Verenigde Naties en Kim Jong-un.") == ["verenigde naties", "kim jong-un"]
    assert name_in("north korea", "in Noord-Korea") and name_in("kharkiv", "een aanval op Charkiv")
    assert name_in("moscow", "Moskou") and name_in("kim jong-un", "Kim Jong-uns dochter")
    assert not name_in("park", "In 1999 werd haar zoontje Chol geboren.")
    assert name_part_in("jihyun park", "Park werd lid") and not name_part_in("kim yo-jong", "Kim Jong-il en Kim Jong-un")


# ----------------------------------------------------------------------------- the question
@pytest.mark.parametrize("question, kind", [
    ("Hoeveel kinderen heeft Jihyun Park?", "number"), ("Hoe oud is Remco Breuker?", "number"),
    ("Wanneer vetoode Rusland het panel?", "date"), ("In which year was Park's son Chol born?", "date"),
    ("In welke stad werd Jihyun Park geboren?", "place"), ("Who is the president of South Korea?", "person"),
    ("Wie is Jihyun Park?", "other"), ("Hoe heet de zoon van Park?", "name"), ("Waarom koos Park Engeland?", "reason")])
def test_what_a_question_asks_for(question, kind):
    assert asked(question).kind == kind


def test_a_number_answers_only_with_its_unit_and_not_as_a_year():
    assert not holds_kind("Ze wonen in Bury met hun drie kinderen.", "number", (), "Hoe oud is Kwanghyun?")
    assert holds_kind("vertelt Jihyun Park (56) over haar tijd", "number", (), "Hoe oud is Jihyun Park?")
    assert not holds_kind("al sinds de oprichting in 1948", "number", (), "Hoeveel soldaten sneuvelden?")
    assert not holds_kind("Park deed in 2021 mee.", "date", (), "Hoeveel stemmen kreeg ze in 2021?")


def test_a_day_of_the_week_is_a_date_a_magnitude_is_not_a_count():
    q = "Op welke dag van de week sprak Rusland zijn veto uit?"
    assert asked(q).kind == "date"
    assert holds_kind("Op donderdag besloot Rusland een vetostem uit te spreken.", "date", (), q)
    assert not holds_kind("Rusland besloot een vetostem uit te spreken.", "date", (), q)
    assert not holds_kind("Op donderdag kwam het panel bijeen.", "date", (), "Wat gebeurde er op donderdag?")
    # "duizenden vechten" would answer "hoeveel sneuvelden" as readily: a magnitude is no count
    assert not holds_kind("duizenden Noord-Koreaanse militairen vechten", "number", (), "Hoeveel soldaten sneuvelden?")


# ----------------------------------------------------------------------------- degenerate output
def test_degenerate_output_is_named():
    reasons = lambda text, lang="nl": [f.reason for f in degenerate(text, ["Passage."], lang)]  # noqa: E731
    assert reasons("[1]") == ["citation_only"]
    assert reasons("Park woont in Bury [1]. " * 8) == ["repetition"]
    assert "wrong_language" in reasons("Jihyun Park is a refugee who lives in Bury with her three children [1].")
    assert "not_an_answer" in reasons("De artikelen geven hier geen antwoord op. Park is 56 jaar [1].")
    assert reasons("Jihyun Park is 56 jaar oud [1].") == []


def test_a_copied_passage_is_not_an_answer():
    passage = " ".join(f"woord{i}" for i in range(120)) + "."
    assert copied_passage(passage + " [1]", [passage]) is not None
    assert copied_passage("Kort antwoord met een paar woorden [1].", [passage]) is None


def test_the_loop_guard_stops_a_model_that_repeats_itself():
    guard = LoopGuard()
    stopped = [guard.add("Park woont in Bury. ") for _ in range(10)]
    assert any(stopped) and stopped.index(True) < 6
    assert dedupe_sentences("Park woont in Bury [1]. Park woont in Bury [1]. Ze is 56 [1].") == \
        "Park woont in Bury [1]. Ze is 56 [1]."


def test_the_loop_guard_holds_little_of_a_flood():
    """A server that floods megabytes without a sentence end: the guard keeps a bounded part of it, so
    each piece costs the same (before, every piece re-read the whole text: minutes for 25 MB)."""
    guard = LoopGuard()
    for _ in range(100):
        assert not guard.add("Jihyun Park " + "x" * 50_000)
    assert guard.length == 100 * 50_012
    assert len(guard._recent) <= TAIL_WINDOW and len(guard._pending) <= LONGEST_SENTENCE + 50_012
    assert guard.add(". " + "En nog een zin. " * 2)  # ... and still finds a repeat after it


# ----------------------------------------------------------------------------- on the real index
@pytest.fixture(scope="module")
def pipeline(runtime, offline_settings):
    return Pipeline(runtime.retriever, None, offline_settings)


def check(pipeline, question, answer, lang="nl"):
    passages = pipeline.passages_for(question, k=10, budget=None)
    return pipeline.verifier.check(question, answer, passages, lang=lang), passages


def cite(passages, phrase: str) -> int:
    return next(n for n, p in enumerate(passages, 1) if phrase in p.chunk.text)


def test_a_correct_sentence_is_supported_and_names_its_sentence(pipeline):
    q = "Hoe oud is Jihyun Park?"
    n = cite(pipeline.passages_for(q, k=10, budget=None), "(56)")
    v, passages = check(pipeline, q, f"Jihyun Park is 56 jaar oud [{n}].")
    assert v.support == "answered" and v.verdicts[0].verdict == "supported"
    assert "(56)" in v.verdicts[0].support["text"]


def test_said_of_someone_else_is_unsupported(pipeline):
    q = "In which year was Park's son Chol born?"
    n = cite(pipeline.passages_for(q, k=10, budget=None), "In 1999 werd haar zoontje Chol geboren")
    v, _ = check(pipeline, q, f"Park was born in 1999 [{n}].", lang="en")
    assert v.verdicts[0].verdict == "unsupported" and "chol" in v.verdicts[0].reason.lower()
    assert v.support == "uncertain"


def test_a_wrong_number_is_unsupported(pipeline):
    q = "Hoeveel kinderen heeft Jihyun Park?"
    passages = pipeline.passages_for(q, k=10, budget=None)
    n = cite(passages, "drie kinderen")
    assert check(pipeline, q, f"Jihyun Park heeft drie kinderen [{n}].")[0].support == "answered"
    v, _ = check(pipeline, q, f"Jihyun Park heeft twee kinderen [{n}].")
    assert v.verdicts[0].verdict == "unsupported" and "2" in v.verdicts[0].reason


def test_true_but_no_answer_is_off_the_question(pipeline):
    q = "Hoe lang had het VN-panel bestaan?"
    passages = pipeline.passages_for(q, k=10, budget=None)
    n = cite(passages, "strafmaatregelen")
    v, _ = check(pipeline, q, f"De bestaande strafmaatregelen blijven van kracht [{n}].")
    assert v.verdicts[0].verdict == "off_question" and v.support == "uncertain"


def test_a_bare_name_from_a_passage_about_someone_else_does_not_answer(pipeline):
    q = "Who is the president of South Korea?"
    passages = pipeline.passages_for(q, k=10, budget=None)
    if not passages:  # the decide step abstains: nothing reaches the model at all
        return
    n = cite(passages, "Donald Trump")
    v, _ = check(pipeline, q, f"[{n}] Donald Trump", lang="en")
    assert v.support != "answered"


def test_a_wrong_citation_number_is_corrected_when_another_passage_says_it(pipeline):
    q = "Hoe oud is de dochter van Kim Jong-un?"
    passages = pipeline.passages_for(q)
    n = cite(passages, "tussen de 10 en 11 jaar oud")
    wrong = 1 if n != 1 else 2
    text, notes = pipeline.verifier.recite(f"Ze is naar schatting tussen de 10 en 11 jaar oud [{wrong}].", passages)
    assert f"[{n}]" in text and notes


@pytest.mark.parametrize("question", ["Hoeveel kinderen heeft Jihyun Park?", "In welke stad werd Jihyun Park geboren?",
                                      "Hoe oud is Remco Breuker?"])
def test_the_newcomer_cases_are_not_answered_with_the_wrong_sentence(pipeline, question):
    a = pipeline.ask(question, generator="extractive")
    if a.support == "answered":  # only with a sentence that does answer
        assert "(56)" not in a.answer and "strafkamp" not in a.answer and "10 en 11" not in a.answer
    assert all(v["verdict"] in ("supported", "off_question") for v in a.verdicts)


def test_extractive_answers_carry_verdicts_with_offsets(pipeline):
    a = pipeline.ask("Hoe oud is Jihyun Park?", generator="extractive")
    assert a.support == "answered" and a.verdicts
    for v in a.verdicts:
        assert a.answer[v["start"]:v["end"]] == v["sentence"] and v["verdict"] == "supported"
