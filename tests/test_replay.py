"""Real small models' answers, replayed: the recorded raw replies of Qwen2.5-Coder-0.5B and 1.5B
(tests/data/llm, labelled by hand) served over HTTP by the fake OpenAI-compatible server, asked through
the real pipeline (index, retrieval, context, prompt, the ``openai`` backend, the check).

What must hold (issue: every sentence verified, whatever model wrote it):
- the prompt the pipeline sends is the one the model read when it was recorded (else the replay would
  test something else: re-record with eval/record_llm.py);
- the answers labelled wrong, off the question or degenerate are not returned as plain ``answered``, the
  ones labelled good are, off-topic questions stay abstained: at least as often as measured (``FLOORS``);
- the verdicts come with the answer, one per sentence, with the passage sentence that supports it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer.pipeline import Pipeline
from rag.eval.verification import score_replay
from rag.llms.openai import OpenAILLM
from rag.llms.replay import Cassette

DATA = Path(__file__).parent / "data" / "llm"
CASSETTES = sorted(p for p in DATA.glob("*.jsonl"))
QA = {json.loads(line)["id"]: json.loads(line) for f in ("qa.jsonl", "heldout.jsonl")
      for line in (Path(__file__).parents[1] / "eval" / f).read_text(encoding="utf-8").splitlines() if line.strip()}


def _labelled(path: Path) -> Cassette:
    cassette = Cassette.load(path)
    cassette.records = [r for r in cassette.records if r.get("label") or r.get("abstained_by") == "retrieval"]
    return cassette


@pytest.fixture(params=CASSETTES, ids=[p.stem for p in CASSETTES])
def replayed(request, runtime, offline_settings, fake_openai):
    cassette = _labelled(request.param)
    if not cassette.records:
        pytest.skip(f"{request.param.name} holds no labelled answers")
    fake_openai.models = [cassette.model]
    fake_openai.reply = lambda body: cassette.reply(body["messages"]) or ""
    settings = offline_settings.model_copy(update={"openai_base_url": fake_openai.base_url, "generator": "openai",
                                                   "llm_model": cassette.model})
    llm = OpenAILLM.from_settings(settings)
    pipeline = Pipeline(runtime.retriever, llm, settings)
    answers = {}
    for r in cassette.records:
        r.setdefault("kind", QA.get(r["id"], {}).get("kind"))
        before = len(fake_openai.chat_requests)
        answers[r["id"]] = pipeline.ask(r["question"], generator="openai")
        sent = fake_openai.chat_requests[before:]
        if r.get("raw") is None:
            assert not sent, f"{r['id']}: the decide step abstained when recorded, now the model is asked"
        else:
            assert sent and sent[-1]["messages"] == r["messages"], \
                f"{r['id']}: the prompt differs from the recorded one: re-record {request.param.name}"
    yield cassette, answers
    llm.close()


# What the check achieved on each cassette when it was last changed (rag eval --replay, labels by hand): a
# floor against regressions. The targets (bad ones >= 0.85 not answered, every good one answered,
# off-topic abstained) are met by the 0.5B cassette's bad answers and by the held-out 1.5B's good ones only;
# docs/evaluation.md has the figures. The held-out cassettes (eval/heldout.jsonl) were scored once after
# the check was built and never tuned on.
#                                  bad not answered, good answered, off-topic abstained
FLOORS = {"qwen2.5-coder-0.5b": (0.91, 0.91, 1.0),
          "qwen2.5-coder-1.5b": (0.72, 0.86, 1.0),
          "heldout-qwen2.5-coder-0.5b": (0.83, 0.66, 0.9),
          "heldout-qwen2.5-coder-1.5b": (0.85, 1.0, 0.8)}


def test_the_check_catches_what_people_judged_wrong_and_keeps_what_they_judged_good(replayed, request):
    cassette, answers = replayed
    score = score_replay(cassette.records, answers)
    bad, good, off_topic = FLOORS[request.node.callspec.id]
    assert score["answers"] >= 20
    assert score["bad_not_answered"] is None or score["bad_not_answered"] >= bad, score["missed"]
    assert score["good_answered"] is None or score["good_answered"] >= good, score["missed"]
    assert score["off_topic_abstained"] is None or score["off_topic_abstained"] >= off_topic


def test_every_sentence_has_a_verdict_and_the_supported_ones_name_their_sentence(replayed):
    cassette, answers = replayed
    for r in cassette.records:
        a = answers[r["id"]]
        if a.abstained:
            assert a.verdicts == []
            continue
        assert a.verdicts, r["id"]
        for v in a.verdicts:
            assert v["verdict"] in ("supported", "unsupported", "off_question") and v["reason"]
            assert a.answer[v["start"]:v["end"]] == v["sentence"]
            if v["verdict"] == "supported":
                c = next(c for c in a.citations if c.n == v["support"]["n"])
                assert c.doc_id == v["support"]["doc_id"]
                assert c.start <= v["support"]["start"] < v["support"]["end"] <= c.end
        if a.support == "answered":
            assert all(v["verdict"] == "supported" for v in a.verdicts) and not a.flags


# Held-out misses, measured once and kept visible (not tuned away): the 0.5B's garbled "De top tussen
# Japan en Noord-Korea doorgegaan is 'Ze hebben te weinig te bieden'" stands as answered.
KNOWN_DEGENERATE_MISSES = {"heldout-qwen2.5-coder-0.5b": {"h011"}}


def test_a_degenerate_reply_never_stands_as_answered(replayed, request):
    cassette, answers = replayed
    known = KNOWN_DEGENERATE_MISSES.get(request.node.callspec.id, set())
    passed = {r["id"] for r in cassette.records
              if r.get("label") == "degenerate" and answers[r["id"]].support == "answered"}
    assert passed == known, passed
