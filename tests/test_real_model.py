"""A real small model, live: llama-server with Qwen2.5-Coder-0.5B-Instruct (or whatever GGUF
RAG_TEST_LLAMA_MODEL names) answering through the ``openai`` backend, every sentence of its answers checked.

Runs when tests/test_llama_server.py finds a llama-server binary and a GGUF (RAG_TEST_LLAMA_SERVER,
RAG_TEST_LLAMA_MODEL; the README says how to get both); skipped otherwise. A weak model writes what it
writes: these tests hold the check to its promise whatever comes out -- an answer is plainly ``answered``
only when every sentence is supported by the passage it cites and no degenerate output was found; an
unsupported answer is never shown as the model's without its verdicts; off-topic questions never reach it.
"""

from __future__ import annotations

import pytest

from rag.answer.pipeline import Pipeline
from rag.llms.openai import OpenAILLM
from rag.llms.recording import RecordingLLM
from tests.test_llama_server import ALIAS, llama_server  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

QUESTIONS = ["Hoeveel kinderen heeft Jihyun Park?", "In which year was Park's son Chol born?",
             "Hoe lang had het VN-panel bestaan?", "Wat is de hoofdstad van Australië?"]


@pytest.fixture(scope="module")
def answers(llama_server, runtime):  # noqa: F811
    settings = runtime.settings.model_copy(update={"generator": "openai", "openai_base_url": llama_server,
                                                   "llm_model": ALIAS, "max_answer_tokens": 120, "llm_timeout": 600})
    with OpenAILLM.from_settings(settings) as adapter:
        llm = RecordingLLM(adapter)
        pipeline = Pipeline(runtime.retriever, llm, settings)
        out = {}
        for q in QUESTIONS:
            llm.calls.clear()
            out[q] = (pipeline.ask(q, generator="openai"), [c["text"] for c in llm.calls])
        return out


def test_answered_means_every_sentence_is_supported(answers):
    for q, (a, raw) in answers.items():
        assert a.support in ("answered", "uncertain", "abstained"), q
        if a.support == "answered":
            assert a.verdicts and all(v["verdict"] == "supported" for v in a.verdicts) and not a.flags, (q, raw)
        if not a.abstained:
            assert a.verdicts, (q, raw)
            for v in a.verdicts:
                assert a.answer[v["start"]:v["end"]] == v["sentence"]


def test_a_model_answer_without_support_is_replaced_by_quotes_from_the_articles(answers):
    for q, (a, raw) in answers.items():
        if a.generator == "extractive" and raw:
            assert a.support == "uncertain" and any("not found in its passages" in w for w in a.warnings), (q, raw)
            assert any(f["reason"] == "no_supported_sentence" for f in a.flags)


def test_off_topic_questions_never_reach_the_model(answers):
    a, raw = answers["Wat is de hoofdstad van Australië?"]
    assert a.support == "abstained" and a.abstain_reason == "retrieval" and raw == []
