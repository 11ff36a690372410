"""Citation markers only the check writes: an article full of footnote markers ("[1]", "［2］", "[ 3 ]",
"[bron 4]"), asked about with every generator. Every "[n]" in every answer is one of that answer's
citations; the article's own markers reach answers and prompts written with parentheses."""

from __future__ import annotations

import re

import pytest

from rag.answer.check import find_citations
from rag.answer.pipeline import Pipeline
from rag.llms.openai import OpenAILLM
from rag.runtime import open_runtime

ARTICLE = """# Vluchtelingen in Bury

Jihyun Park woont sinds 2008 in Bury, een voorstad van Manchester[1]. Ze heeft drie kinderen［2］ en werkt
als mensenrechtenactivist [ 3 ]. In 2014 getuigde ze voor de Onderzoekscommissie van de Verenigde Naties [bron 4].

Er leven naar schatting zeshonderd Noord-Koreaanse vluchtelingen in het Verenigd Koninkrijk[5][6]. De meesten
wonen in New Malden, in het zuiden van Londen [7, 8].

[1] Gemeente Bury, 2020. [2] Interview, 2024. [3] NRC. [4] VN-rapport. [5] Schatting. [6] Idem. [7] BBC. [8] Idem.
"""
QUESTIONS = ["Waar woont Jihyun Park?", "Hoeveel kinderen heeft Jihyun Park?",
             "Hoeveel Noord-Koreaanse vluchtelingen leven in het Verenigd Koninkrijk?"]


@pytest.fixture(scope="module")
def footnoted(tmp_path_factory, embedder, offline_settings):
    data = tmp_path_factory.mktemp("footnotes-data")
    (data / "voetnoten.md").write_text(ARTICLE, encoding="utf-8")
    settings = offline_settings.model_copy(update={"data_dir": data, "index_dir": tmp_path_factory.mktemp("fn-idx")})
    return open_runtime(settings, embedder=embedder, build_if_missing=True), settings


def every_marker_is_a_citation(answer) -> None:
    numbers = {c.n for c in answer.citations}
    cited = [n for _, _, ns in find_citations(answer.answer) for n in ns]
    assert set(cited) <= numbers, (answer.answer, numbers)
    assert "［" not in answer.answer and "[bron" not in answer.answer


@pytest.mark.parametrize("question", QUESTIONS)
def test_extractive_answers_carry_only_their_own_citations(footnoted, question):
    rt, settings = footnoted
    a = Pipeline(rt.retriever, None, settings).ask(question, generator="extractive")
    assert not a.abstained
    every_marker_is_a_citation(a)
    assert re.search(r"\((?:bron )?\d\)|\(\d, \d\)", a.answer)  # the article's markers are still there to see


@pytest.mark.parametrize("question", QUESTIONS)
def test_llm_answers_and_prompts_carry_only_the_check_s_citations(footnoted, fake_openai, question):
    rt, settings = footnoted
    settings = settings.model_copy(update={"openai_base_url": fake_openai.base_url, "generator": "openai",
                                           "llm_model": fake_openai.models[0]})
    # a model that copies the passage, markers and all, and cites numbers that were never given
    fake_openai.reply = lambda body: "Park woont in Bury, een voorstad van Manchester[1][5]. Ze heeft drie kinderen［2］ [7, 8]."
    with OpenAILLM.from_settings(settings) as llm:
        a = Pipeline(rt.retriever, llm, settings).ask(question, generator="openai")
    prompt = fake_openai.last_chat["messages"][-1]["content"]
    passages = re.findall(r"<passage[^>]*>\n(.*?)\n</passage>", prompt, re.S)
    assert passages and not any(find_citations(p) for p in passages)
    assert "［" not in prompt
    every_marker_is_a_citation(a)
