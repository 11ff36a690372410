"""The answering pipeline end to end: real embedding model, FAISS and BM25 over the shipped articles
(session fixtures in tests/conftest.py), and the fake Ollama server through the real ``ollama`` client."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rag.errors import ConfigError, InvalidQuery, LLMModelNotFound, LLMStreamBroken, LLMTimeout, LLMUnavailable
from rag.llms.ollama import OllamaLLM
from rag.answer.decide import THRESHOLD_DUTCH, THRESHOLD_OTHER
from rag.answer.pipeline import Pipeline, StreamEvent
from rag.answer.prompt import NO_ANSWER

REPO = Path(__file__).resolve().parents[1]
CHARKIV = "Hoeveel gewonden vielen er bij de aanval op Charkiv?"
CHARKIV_DOC = "09-geavanceerder-wapentuig"
EVIDENCE = "meer dan veertig gewonden"
TIMEOUT = 1.0
PROBE = 0.5


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@pytest.fixture(scope="module")
def settings(offline_settings):
    return offline_settings.model_copy(update={"llm_timeout": TIMEOUT, "llm_probe_timeout": PROBE})


@pytest.fixture(scope="module")
def extractive(runtime, settings) -> Pipeline:
    return Pipeline(runtime.retriever, None, settings)


def make_llm(url: str, settings) -> OllamaLLM:
    return OllamaLLM(host=url, model=settings.llm_model, timeout=TIMEOUT, probe_timeout=PROBE,
                     num_ctx=settings.num_ctx, max_tokens=settings.max_answer_tokens)


@pytest.fixture
def with_llm(runtime, settings, fake_ollama):
    llm = make_llm(fake_ollama.url, settings)
    yield Pipeline(runtime.retriever, llm, settings)
    llm.close()


def passages_in(body: dict) -> int:
    return body["messages"][-1]["content"].count("</passage>")


def collect(events) -> tuple[list[StreamEvent], str]:
    evs = list(events)
    return evs, "".join(e.data for e in evs if e.kind == "token")


# ----------------------------------------------------------------------------- extractive
def test_charkiv_extractive_cites_the_passage_with_the_answer(extractive, runtime):
    a = extractive.ask(CHARKIV, generator="extractive")
    assert not a.abstained and a.generator == "extractive"
    assert a.answer.startswith("> ") and "[" in a.answer and a.support == "answered"
    good = [c for c in a.citations if c.doc_id == CHARKIV_DOC and EVIDENCE in norm(c.text)]
    assert good, a.citations
    c = good[0]
    assert f"[{c.n}]" in a.answer and EVIDENCE in norm(a.answer)
    assert runtime.store.documents[c.doc_id].text[c.start:c.end] == c.text
    assert a.sources[c.n - 1].chunk.chunk_id == c.chunk_id
    assert set(a.timings) >= {"retrieval_ms", "generation_ms"}
    d = a.to_dict()
    assert d["generator"] == "extractive" and d["citations"][0]["doc_id"] and "start" in d["citations"][0]


@pytest.mark.parametrize("question, lang", [
    ("Wat is de hoofdstad van Australië?", "nl"),
    ("Hoe hoog is de Mount Everest?", "nl"),
    ("How do I bake sourdough bread?", "en"),
])
def test_unrelated_questions_abstain(extractive, question, lang):
    a = extractive.ask(question)
    assert a.abstained and a.citations == [] and a.answer == NO_ANSWER[lang]
    assert a.abstain_reason == "retrieval" and a.relevance < (THRESHOLD_DUTCH if lang == "nl" else THRESHOLD_OTHER)
    assert a.sources == []  # an abstention lists no passages that support nothing


def test_abstention_rates_on_the_eval_set(extractive):
    """The calibrated decision (rag/answer/decide.py): 19/19 off-topic abstained, 0/115 answerable."""
    rows = [json.loads(line) for line in (REPO / "eval" / "qa.jsonl").read_text("utf-8").splitlines() if line.strip()]
    off = [extractive.ask(r["question"], generator="extractive").abstained for r in rows if r.get("kind") == "off-topic"]
    ans = [extractive.ask(r["question"], generator="extractive").abstained for r in rows if r["answerable"]]
    assert len(off) >= 19 and sum(off) >= 0.95 * len(off), f"{sum(off)}/{len(off)} off-topic abstained"
    assert sum(ans) <= 0.03 * len(ans), f"{sum(ans)}/{len(ans)} answerable abstained"


def test_threshold_setting_overrides_calibration(runtime, settings):
    strict = Pipeline(runtime.retriever, None, settings.model_copy(update={"abstain_threshold": 1.01}))
    assert strict.ask(CHARKIV).abstained
    lax = Pipeline(runtime.retriever, None, settings.model_copy(update={"abstain_threshold": 0.0}))
    assert not lax.ask("Wat is de hoofdstad van Australië?").abstained


def test_extractive_stream_order(extractive):
    evs, text = collect(extractive.ask_stream(CHARKIV, generator="extractive"))
    kinds = [e.kind for e in evs]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}
    assert 2 <= kinds.count("token") <= 6
    done = evs[-1].data
    assert text == done.answer and done.citations
    assert [h.chunk.chunk_id for h in evs[0].data] == [h.chunk.chunk_id for h in done.sources]


@pytest.mark.parametrize("kwargs, match", [
    ({"question": "   "}, "empty"),
    ({"question": CHARKIV, "mode": "fuzzy"}, "mode"),
    ({"question": CHARKIV, "generator": "gpt"}, "generator"),
    ({"question": CHARKIV, "k": 0}, "k must"),
    ({"question": CHARKIV, "history": [{"role": "robot", "content": "x"}]}, "history"),
    ({"question": "x" * 5000}, "too long"),
])
def test_invalid_requests(extractive, kwargs, match):
    q = kwargs.pop("question")
    with pytest.raises(InvalidQuery, match=match):
        extractive.ask(q, **kwargs)
    with pytest.raises(InvalidQuery, match=match):
        extractive.ask_stream(q, **kwargs)  # checked before the first next()


# ----------------------------------------------------------------------------- follow-up questions
def test_follow_up_without_llm_finds_the_daughter_article(extractive):
    history = [{"role": "user", "content": "Wie is de dochter van Kim Jong-un?"},
               {"role": "assistant", "content": "Dat is Kim Ju-ae [1]."}]
    plain = extractive.ask("En hoe oud is zij?")
    a = extractive.ask("En hoe oud is zij?", history=history)
    assert a.standalone_question == "dochter Kim Jong-un: En hoe oud is zij?"
    assert a.sources[0].chunk.doc_id == "07-dochter-kim-jong-un"
    assert sum(h.chunk.doc_id == "07-dochter-kim-jong-un" for h in a.sources) > \
        sum(h.chunk.doc_id == "07-dochter-kim-jong-un" for h in plain.sources)


def rewrite_or_answer(standalone: str, dutch: str, answer: str):
    def reply(body: dict) -> str:
        if "search engine" in body["messages"][0]["content"]:
            return json.dumps({"standalone": standalone, "dutch": dutch})
        return answer
    return reply


def test_follow_up_with_llm(with_llm, fake_ollama):
    fake_ollama.reply = rewrite_or_answer("Hoe oud is de dochter van Kim Jong-un?", "Hoe oud is de dochter van Kim Jong-un?",
                                          "Ze is naar schatting tussen de 10 en 11 jaar oud [1].")
    history = [{"role": "user", "content": "Wie is de dochter van Kim Jong-un?"},
               {"role": "assistant", "content": "Dat is Kim Ju-ae [1]."}]
    a = with_llm.ask("En hoe oud is zij?", history=history)
    assert a.generator == "ollama" and a.standalone_question == "Hoe oud is de dochter van Kim Jong-un?"
    assert a.queries == ["Hoe oud is de dochter van Kim Jong-un?"]
    rewrite_req, answer_req = fake_ollama.chat_requests
    assert "Wie is de dochter van Kim Jong-un?" in rewrite_req["messages"][-1]["content"]
    assert "Question: Hoe oud is de dochter van Kim Jong-un?" in answer_req["messages"][-1]["content"]
    assert a.sources[0].chunk.doc_id == "07-dochter-kim-jong-un"


def test_an_english_question_is_searched_as_it_is_without_a_model_call(with_llm, extractive, fake_ollama):
    """A question that stands on its own needs no rewrite call, in English too: the multilingual model
    finds the Dutch passages from the English words (eval/translation_retrieval.py measured that the
    real models' translations made retrieval worse)."""
    q = "Why is the attack on Kharkiv useful for North Korean weapons engineers?"
    evidence = "een beter beeld krijgen van hoe de door hen ontwikkelde projectielen"
    fake_ollama.reply = "They see how their missiles perform in a real attack [1]."
    a = with_llm.ask(q)
    assert a.queries == [q] and a.standalone_question is None
    assert all("search engine" not in r["messages"][0]["content"] for r in fake_ollama.chat_requests)
    assert any(evidence in norm(h.chunk.text) for h in a.sources)
    assert any(evidence in norm(h.chunk.text) for h in extractive.ask(q).sources)


def test_an_english_follow_up_still_gets_the_model_s_rewrite(with_llm, fake_ollama):
    fake_ollama.reply = rewrite_or_answer("How old is Kim Jong-un's daughter?", "Hoe oud is de dochter van Kim Jong-un?",
                                          "She is estimated to be 10 or 11 years old [1].")
    history = [{"role": "user", "content": "Who is Kim Jong-un's daughter?"},
               {"role": "assistant", "content": "Kim Ju-ae [1]."}]
    a = with_llm.ask("And how old is she?", history=history)
    assert a.standalone_question == "How old is Kim Jong-un's daughter?"
    assert a.queries == ["How old is Kim Jong-un's daughter?", "Hoe oud is de dochter van Kim Jong-un?"]


# ----------------------------------------------------------------------------- generation with the LLM
def test_llm_answer_with_citations_checked(with_llm, fake_ollama, settings):
    fake_ollama.reply = "Er vielen meer dan veertig gewonden [1][7]. Eén persoon kwam om bij de aanval op Charkiv."
    a = with_llm.ask(CHARKIV, generator="ollama")
    assert a.generator == "ollama" and not a.abstained
    assert "[7]" not in a.answer and a.answer.startswith("Er vielen meer dan veertig gewonden [1].")
    assert any("[7]" in w for w in a.warnings)
    assert all(1 <= c.n <= len(a.sources) for c in a.citations)
    c1 = next(c for c in a.citations if c.n == 1)
    assert c1.doc_id == a.sources[0].chunk.doc_id and not c1.attached
    body = fake_ollama.last_chat
    assert body["options"]["num_ctx"] == settings.num_ctx
    assert body["options"]["num_predict"] == settings.max_answer_tokens
    # what the model reads: the sentences that answer (rag/answer/context.py), not the five chunks
    assert CHARKIV in body["messages"][-1]["content"] and passages_in(body) == len(with_llm.passages_for(CHARKIV)) < 5
    assert len(fake_ollama.chat_requests) == 1  # a Dutch question without history needs no rewrite call
    assert a.verdicts[0]["verdict"] == "supported" and "veertig gewonden" in a.verdicts[0]["support"]["text"]


def test_llm_citations_are_numbered_in_order_of_first_use_and_odd_numbers_removed(with_llm, fake_ollama, runtime):
    fake_ollama.reply = "Geen idee [1]."
    sources = with_llm.ask(CHARKIV, generator="ollama").sources
    n = next(i for i, h in enumerate(sources, 1) if EVIDENCE in norm(h.chunk.text))
    m = next(i for i in range(len(sources), 0, -1) if i != n)
    fake_ollama.reply = (f"Bij de aanval op Charkiv vielen een dode en meer dan veertig gewonden [{n}]. "
                         f"Noord-Korea levert Rusland wapens [{m}][-1][99999999999].")
    a = with_llm.ask(CHARKIV, generator="ollama")
    cited = [int(x) for x in __import__("re").findall(r"\[(\d+)\]", a.answer)]
    assert cited[0] == 1 and sorted(set(cited)) == list(range(1, len(set(cited)) + 1)), a.answer
    assert "[-1]" not in a.answer and "99999999999" not in a.answer
    assert [c.n for c in a.citations] == sorted(c.n for c in a.citations)
    # each citation names the passage sentence that holds what its answer sentence says
    first = next(c for c in a.citations if c.n == 1)
    assert first.doc_id == CHARKIV_DOC
    doc = runtime.store.documents[first.doc_id].text
    assert first.quotes and EVIDENCE in norm(doc[first.quotes[0]["start"]:first.quotes[0]["end"]])


def test_llm_answer_without_any_supported_sentence_becomes_the_extractive_answer(with_llm, fake_ollama):
    fake_ollama.reply = "Dat is een lastige vraag over de oorlog in Oekraïne [9]."
    a = with_llm.ask(CHARKIV, generator="ollama")
    assert not a.abstained and a.support == "uncertain" and a.generator == "extractive"
    assert a.answer.startswith("Ik vond geen zin die dit precies beantwoordt") and a.citations
    assert any("not found in its passages" in w and "cites no passage" in w for w in a.warnings)
    assert [f["reason"] for f in a.flags] == ["no_supported_sentence"]


def test_a_fact_the_articles_do_not_hold_is_answered_as_uncertain_not_confidently(extractive):
    a = extractive.ask("Hoeveel soldaten heeft Noord-Korea in totaal?", generator="extractive")
    assert a.support in ("uncertain", "abstained"), a.answer
    if a.support == "uncertain":
        assert a.answer.startswith("Ik vond geen zin die dit precies beantwoordt")


def test_narration_is_not_shown_as_speech(extractive, runtime):
    a = extractive.ask("Hoe oud is Jihyun Park?", generator="extractive")
    assert a.support == "answered" and "56" in a.answer
    for c in a.citations:
        for q in c.quotes:
            span = runtime.store.documents[c.doc_id].text[q["start"]:q["end"]]
            assert span in a.answer  # the source's own words, unchanged
    # no quotation mark in the answer that the cited spans do not hold themselves
    spans = "".join(runtime.store.documents[c.doc_id].text[q["start"]:q["end"]] for c in a.citations for q in c.quotes)
    for mark in "„“”":
        assert a.answer.count(mark) <= spans.count(mark)


def test_llm_stream(with_llm, fake_ollama):
    fake_ollama.reply = "Bij de aanval vielen meer dan veertig gewonden [1]. Zie ook [12]."
    evs, text = collect(with_llm.ask_stream(CHARKIV))
    assert evs[0].kind == "sources" and evs[-1].kind == "done" and [e.kind for e in evs[1:-1]] == ["token"] * (len(evs) - 2)
    assert len(evs) - 2 > 3 and text == fake_ollama.reply  # the raw pieces as they came
    done = evs[-1].data
    assert done.generator == "ollama" and "[12]" not in done.answer and [c.n for c in done.citations] == [1]


def test_model_abstention(with_llm, fake_ollama):
    fake_ollama.reply = "De artikelen geven hier geen antwoord op."
    a = with_llm.ask("Hoeveel kernkoppen heeft Noord-Korea?")
    assert a.abstained and a.abstain_reason == "model" and a.citations == [] and a.generator == "ollama"


def test_small_context_drops_lowest_ranked_passages(runtime, settings, fake_ollama):
    small = settings.model_copy(update={"num_ctx": 1200, "max_answer_tokens": 300})
    llm = make_llm(fake_ollama.url, small)
    fake_ollama.reply = "Meer dan veertig gewonden [1]."
    whole = small.model_copy(update={"context_tokens": "chunks"})  # whole chunks: too many for num_ctx=1200
    a = Pipeline(runtime.retriever, llm, whole).ask(CHARKIV, k=5, generator="ollama")
    llm.close()
    body = fake_ollama.last_chat
    given = passages_in(body)
    assert 1 <= given < 5 and body["options"]["num_ctx"] == 1200
    assert f'<passage n="{given}"' in body["messages"][-1]["content"]
    dropped = [h.chunk.chunk_id for h in a.sources[given:]]
    (w,) = [w for w in a.warnings if "left out" in w]
    assert all(cid in w for cid in dropped) and a.sources[0].chunk.chunk_id not in w


def test_context_too_small_for_any_passage(runtime, settings, fake_ollama):
    tiny = settings.model_copy(update={"num_ctx": 700, "max_answer_tokens": 600})
    llm = make_llm(fake_ollama.url, tiny)
    p = Pipeline(runtime.retriever, llm, tiny)
    with pytest.raises(ConfigError, match="num_ctx"):
        p.ask(CHARKIV, generator="ollama")
    a = p.ask(CHARKIV, generator="auto")
    llm.close()
    assert a.generator == "extractive" and any("num_ctx" in w for w in a.warnings)
    assert fake_ollama.chat_requests == []


# ----------------------------------------------------------------------------- faults
FAULTS = {
    "down": (LLMUnavailable, "ollama serve"),
    "model_missing": (LLMModelNotFound, "ollama pull qwen2.5:7b-instruct"),
    "slow": (LLMTimeout, "within"),
    "break_stream": (LLMStreamBroken, "broke off|dropped"),
}


def faulty(fault: str, fake_ollama, dead_ollama_url, runtime, settings) -> Pipeline:
    if fault == "down":
        url = dead_ollama_url
    else:
        url = fake_ollama.url
        fake_ollama.mode = fault
        fake_ollama.slow_seconds = 10
        fake_ollama.break_after = 3
        fake_ollama.reply = "Bij de aanval op Charkiv vielen een dode en meer dan veertig gewonden [1]."
    return Pipeline(runtime.retriever, make_llm(url, settings), settings)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_with_generator_ollama_is_a_clear_error(fault, fake_ollama, dead_ollama_url, runtime, settings):
    p = faulty(fault, fake_ollama, dead_ollama_url, runtime, settings)
    error, words = FAULTS[fault]
    t = time.monotonic()
    with pytest.raises(error, match=words):
        p.ask(CHARKIV, generator="ollama")
    assert time.monotonic() - t < TIMEOUT + 3


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_with_generator_auto_falls_back_to_extractive(fault, fake_ollama, dead_ollama_url, runtime, settings):
    p = faulty(fault, fake_ollama, dead_ollama_url, runtime, settings)
    t = time.monotonic()
    a = p.ask(CHARKIV)
    assert time.monotonic() - t < TIMEOUT + 3
    assert a.generator == "extractive" and not a.abstained
    assert any(w.startswith("answered extractively") for w in a.warnings)
    assert any(EVIDENCE in norm(c.text) for c in a.citations)
    assert a.answer.startswith("> ")  # purely extractive: nothing was sent before the fault


def test_stream_broken_half_way_in_auto_appends_the_extractive_answer(with_llm, fake_ollama):
    fake_ollama.mode = "break_stream"
    fake_ollama.break_after = 4
    fake_ollama.reply = "Bij de aanval op Charkiv vielen een dode en meer dan veertig gewonden [1]."
    evs, text = collect(with_llm.ask_stream(CHARKIV))
    done = evs[-1].data
    assert evs[-1].kind == "done" and done.generator == "extractive"
    assert text.startswith("Bij de aanval op\n")  # the 4 pieces sent before the break
    assert "brak af" in text and "\n> " in text and EVIDENCE in norm(text.split("brak af", 1)[1])
    assert done.answer.startswith("Bij de aanval op") and "\n> " in done.answer
    assert any(EVIDENCE in norm(c.text) for c in done.citations)
    assert any("broke off after 4 piece(s)" in w and "appended" in w for w in done.warnings)


def test_stream_broken_half_way_with_generator_ollama_raises_after_the_tokens(with_llm, fake_ollama):
    fake_ollama.mode = "stream_error"
    fake_ollama.break_after = 2
    fake_ollama.reply = "Bij de aanval vielen meer dan veertig gewonden [1]."
    kinds = []
    with pytest.raises(LLMStreamBroken):
        for ev in with_llm.ask_stream(CHARKIV, generator="ollama"):
            kinds.append(ev.kind)
    assert kinds == ["sources", "token", "token"]


def test_an_excerpt_adds_no_quotation_marks_and_a_cut_quotation_starts_with_an_ellipsis():
    from rag.answer.extractive import excerpt

    assert excerpt("Daar belandde ze in 2004 in een strafkamp.") == "> Daar belandde ze in 2004 in een strafkamp."
    assert excerpt("„Ik wil wat terugdoen”, zegt Park.") == "> „Ik wil wat terugdoen”, zegt Park."
    # the tail of a quotation whose first sentences were split off
    assert excerpt("We hadden niet eens schoenen!” vertelt Jihyun Park (56).") == \
        "> …We hadden niet eens schoenen!” vertelt Jihyun Park (56)."
    assert excerpt("Het is Kims beleid, zegt ze: „Dat is zo.”") == "> Het is Kims beleid, zegt ze: „Dat is zo.”"
    assert excerpt("Noord-Korea's leger.") == "> Noord-Korea's leger."  # an apostrophe is no quotation


def _sentences(text: str, doc: str = "d"):
    from rag.answer.extractive import ScoredSentence
    from rag.schema import Chunk, Hit

    hit = Hit(Chunk(f"{doc}#0", doc, doc.upper(), text, 100, 100 + len(text)), 1.0)

    def s(sentence: str, score: float, n: int = 1, overlap: float = 0.0) -> ScoredSentence:
        i = text.index(sentence)
        return ScoredSentence(n, hit, 100 + i, 100 + i + len(sentence), sentence, overlap, None, score)
    return hit, s


def test_sentences_that_follow_each_other_are_one_excerpt_with_one_citation():
    from rag.answer.extractive import ExtractiveAnswerer, adjacent_runs

    hit, s = _sentences("Eerste zin over iets. Tweede zin met het antwoord. Derde zin.\n\n# Kop\n\nVierde zin hierna.")
    hit2, s2 = _sentences("Een zin elders in een ander stuk.", "e")
    first, second, third = s("Eerste zin over iets.", 0.9), s("Tweede zin met het antwoord.", 1.0), s("Derde zin.", 0.8)
    fourth, elsewhere = s("Vierde zin hierna.", 0.85), s2("Een zin elders in een ander stuk.", 0.95, 2)
    runs = adjacent_runs([second, elsewhere, first])
    # the run holding the best sentence comes first, its sentences in the passage's order
    assert [[x.text for x in r] for r in runs] == [["Eerste zin over iets.", "Tweede zin met het antwoord."],
                                                  ["Een zin elders in een ander stuk."]]
    # a heading (a new line) between two sentences keeps them apart
    assert len(adjacent_runs([third, fourth])) == 2

    class Fixed(ExtractiveAnswerer):
        def rank(self, queries, hits):
            return [second, elsewhere, first, third]

    ex = Fixed(scorer=None, max_sentences=3, min_relative=0.8).answer("vraag", [hit, hit2])
    assert ex.text == "> Eerste zin over iets. Tweede zin met het antwoord. [1]\n\n> Een zin elders in een ander stuk. [2]"
    assert [c.n for c in ex.citations] == [1, 2]
    assert ex.citations[0].quotes == [{"start": first.start, "end": second.end}]
    # what is shown is exactly the cited span of the document
    doc_text = " " * 100 + hit.chunk.text
    q = ex.citations[0].quotes[0]
    assert doc_text[q["start"]:q["end"]] in ex.text


def test_a_second_sentence_is_shown_only_when_it_adds_question_words_the_first_lacks():
    from rag.answer.check import SupportScorer
    from rag.answer.extractive import ExtractiveAnswerer
    from rag.text import BM25Analyzer

    scorer = SupportScorer(BM25Analyzer())
    text = ("Park werkte jaren in het strafkamp van Chongori. Park werkte jaren in het strafkamp, vertelt ze. "
            "Ze is inmiddels 56 jaar oud en woont in Manchester.")
    hit, s = _sentences(text)
    q = "Hoe oud is Park en waar woont ze nu?"
    best = s("Park werkte jaren in het strafkamp van Chongori.", 1.0, overlap=0.5)
    same = s("Park werkte jaren in het strafkamp, vertelt ze.", 0.95)
    adds = s("Ze is inmiddels 56 jaar oud en woont in Manchester.", 0.9)
    ex = ExtractiveAnswerer(scorer=scorer, keep_adjacent=False)
    chosen = ex.choose([q], [best, same, adds])
    assert [c.text for c in chosen] == [best.text, adds.text]  # the repeat adds nothing: left out


