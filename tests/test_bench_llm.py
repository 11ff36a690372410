"""``rag bench --only llm`` (bench/llm.py): today's prompt (whole chunks) against the new one (the sentences
that answer), without a model (tokens only) and against an OpenAI-compatible server (the fake: timings,
tokens, the check's share of verified sentences)."""

from __future__ import annotations

from rag.answer.pipeline import Pipeline
from rag.eval.qaset import load_qa
from tests.conftest import REPO

from bench import llm as bench_llm


def _pipeline(runtime, offline_settings) -> Pipeline:
    return Pipeline(runtime.retriever, None, offline_settings)


def test_without_a_model_the_new_prompt_is_under_a_third_of_today_s(runtime, offline_settings):
    items = load_qa(REPO / "eval" / "qa.jsonl")
    report = bench_llm.run(_pipeline(runtime, offline_settings), items, step=9, limit=10)
    chunks, context = report["styles"]["chunks"], report["styles"]["context"]
    assert chunks["questions"] == context["questions"] >= 8
    assert context["median_estimated_tokens"] * 2.5 < chunks["median_estimated_tokens"]
    assert "median_first_token_s" not in context  # no model, no timings


def test_the_legacy_prompt_is_today_s_whole_chunks(runtime, offline_settings):
    p = _pipeline(runtime, offline_settings)
    (case,) = bench_llm.cases(p, [next(it for it in load_qa(REPO / "eval" / "qa.jsonl") if it.id == "q002")])
    legacy = case.prompts["chunks"][1]["content"]
    assert legacy.count("<passage") == len(case.passages["chunks"]) == 5
    assert case.prompts["context"][0] != case.prompts["chunks"][0]  # the new fixed part
    assert case.prompts["context"][1]["content"].count("<passage") == len(case.passages["context"])
    assert len(case.prompts["context"][1]["content"]) * 2 < len(legacy)


def test_against_a_server_it_times_both_prompts_and_checks_the_answers(runtime, offline_settings, fake_openai):
    fake_openai.reply = lambda body: "Jihyun Park is 56 jaar oud [1]."
    items = [it for it in load_qa(REPO / "eval" / "qa.jsonl") if it.id in ("q002", "q017")]
    report = bench_llm.run(_pipeline(runtime, offline_settings), items, llm_url=fake_openai.base_url,
                           llm_model=fake_openai.models[0], limit=2, slots=2)
    for style in ("chunks", "context"):
        block = report["styles"][style]
        assert block["questions"] == 2 and block["median_first_token_s"] is not None
        assert block["sentences"] == 2 and 0 <= block["verified_sentences"] <= 1
    sent = [r for r in fake_openai.chat_requests]
    assert [r.get("id_slot") for r in sent] == [0, 1, 0, 1]  # side by side, one slot per style
    q002 = report["per_question"][0]
    assert q002["chunks"]["supported"] == q002["context"]["supported"] == 1  # "56" is in both
