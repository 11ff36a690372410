"""The evaluation: metric functions on hand examples, the set loader, and (below) the real evaluation
on the shipped articles against the CI floors in eval/floors.json, and ``rag eval`` end to end."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import EvalSetError
from rag.eval.evaluation import EvalConfig, run_eval
from rag.eval.metrics import (
    first_relevant_rank,
    fold,
    hit_at_k,
    hit_curve,
    normalize_answer,
    recall_at_k,
    reciprocal_rank,
    relevance,
    retrieval_metrics,
    token_f1,
)
from rag.eval.qaset import QAItem, load_qa, parse_qa_lines
from rag.eval.floors import check_floors, make_floors
from rag.eval.judge import LLMJudge
from rag.schema import Answer, Chunk, Citation, Hit
from tests.conftest import ARTICLES

REPO_ROOT = Path(__file__).resolve().parents[1]

# ===================================================================== metric functions

EVIDENCE = ["de hoofdstad Pyongyang", "Kim Jong-un"]
RANKED = [
    "Een tekst over iets anders.",
    "In  De\nHOOFDSTAD pyongyang  werd gisteren",  # phrase 0 after folding case and white space
    "Niets.",
    "Leider Kim Jong-un sprak; de hoofdstad Pyongyang juichte",  # phrases 0 and 1
]


def test_fold_and_relevance():
    assert fold("  A\tB\n c ") == "a b c"
    m = relevance(RANKED, EVIDENCE)
    assert m == [frozenset(), frozenset({0}), frozenset(), frozenset({0, 1})]
    assert first_relevant_rank(m) == 2
    assert first_relevant_rank([frozenset()] * 3) is None


def test_hit_recall_mrr():
    m = relevance(RANKED, EVIDENCE)
    assert hit_at_k(m, 1) == 0.0
    assert hit_at_k(m, 2) == 1.0
    assert recall_at_k(m, 2, 1) == 0.0
    assert recall_at_k(m, 2, 2) == 0.5
    assert recall_at_k(m, 2, 4) == 1.0
    assert recall_at_k(m, 2, 10) == 1.0  # k beyond the list
    assert reciprocal_rank(m) == 0.5
    assert reciprocal_rank([frozenset()] * 10 + [frozenset({0})]) == 0.0  # rank 11 is outside MRR@10


def test_aggregate_retrieval_metrics_and_curve():
    q1 = (relevance(RANKED, EVIDENCE), 2)  # first relevant at 2, all evidence by 4
    q2 = ([frozenset({0})], 1)  # relevant at 1
    q3 = ([frozenset()] * 3, 1)  # nothing
    got = retrieval_metrics([q1, q2, q3], k=2)
    assert got == pytest.approx({"hit@1": 1 / 3, "hit@2": 2 / 3, "recall@2": (0.5 + 1 + 0) / 3,
                                 "mrr@10": (0.5 + 1 + 0) / 3})
    assert hit_curve([q1, q2, q3], depth=4) == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert retrieval_metrics([], k=5)["hit@5"] is None


def test_normalize_and_token_f1():
    assert normalize_answer("De hoofdstad is  Pyongyang!") == "hoofdstad is pyongyang"
    assert normalize_answer("The capital, an city; 't huis") == "capital city huis"
    assert token_f1("Pyongyang", "pyongyang.") == 1.0
    assert token_f1("", "") == 1.0
    assert token_f1("iets", "") == 0.0
    assert token_f1("noord korea", "zuid japan") == 0.0
    # pred: [hoofdstad, is, pyongyang, stad]; ref: [hoofdstad, pyongyang]: P=2/4, R=2/2 -> F1=2/3
    assert token_f1("De hoofdstad is Pyongyang, stad", "Het hoofdstad Pyongyang") == pytest.approx(2 / 3)
    # repeated tokens count only as often as they occur in both
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)


# ===================================================================== the set loader

GOOD = {"id": "q1", "question": "Wie?", "answer": "Hij.", "evidence": ["een zin hier"], "answerable": True, "lang": "nl"}


def _line(**changes) -> str:
    d = {**GOOD, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not ...})


def test_loader_accepts_extra_keys_and_blank_lines(tmp_path):
    p = tmp_path / "qa.jsonl"
    p.write_text(_line(type="fact", whatever=[1, 2]) + "\n\n" + _line(id="q2", answerable=False, evidence=[], lang="en") + "\n",
                 encoding="utf-8")
    items = load_qa(p)
    assert [i.id for i in items] == ["q1", "q2"]
    assert items[0].evidence == ("een zin hier",) and items[0].line == 1
    assert items[1].line == 3 and items[1].answerable is False


def test_loader_reports_every_bad_line_with_its_number(tmp_path):
    lines = [
        _line(),                               # 1 fine
        "{not json",                            # 2
        _line(id="q3", answer=...),             # 3 missing field
        _line(id="q4", answerable="yes"),       # 4 wrong type
        _line(id="q5", evidence="een zin"),     # 5 wrong type
        "[1, 2]",                               # 6 not an object
        _line(id="q7", lang="de"),              # 7 unknown language
        _line(),                                # 8 duplicate id q1
        _line(id="q9"),                         # 9 fine
    ]
    p = tmp_path / "qa.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EvalSetError) as ei:
        load_qa(p)
    msg = str(ei.value)
    for n in (2, 3, 4, 5, 6, 7, 8):
        assert f"line {n}" in msg, msg
    assert "line 1:" not in msg and "line 9" not in msg
    assert "missing field 'answer'" in msg and "'answerable'" in msg and "'evidence'" in msg
    assert "7 bad line(s)" in msg


def test_loader_missing_file_and_empty_set(tmp_path):
    with pytest.raises(EvalSetError, match="does not exist"):
        load_qa(tmp_path / "nope.jsonl")
    with pytest.raises(EvalSetError, match="no questions"):
        parse_qa_lines(["", "  "])


def test_shipped_set_loads():
    items = load_qa(REPO_ROOT / "eval" / "qa.jsonl")
    assert len(items) >= 60
    assert {i.lang for i in items} == {"nl", "en"}


# ===================================================================== the runner, with fake parts

def _chunk(cid: str, text: str) -> Chunk:
    return Chunk(chunk_id=cid, doc_id=cid.split("#")[0], title="T", text=text, start=0, end=len(text))


class FakeRetriever:
    """Passage 'good' holds the evidence at rank 2 in bm25 and rank 1 in dense/hybrid."""

    def __init__(self):
        self.calls = []

    def search(self, query, k=5, mode="hybrid"):
        self.calls.append((query, k, mode))
        good = _chunk("a#1", "bla Het Antwoord Staat Hier bla")
        bad = [_chunk(f"b#{i}", f"ruis {i}") for i in range(20)]
        ranked = [bad[0], good, *bad[1:]] if mode == "bm25" else [good, *bad]
        return [Hit(chunk=c, score=1.0 / r, rank=r) for r, c in enumerate(ranked[:k], 1)]


@dataclass
class FakePipeline:
    generator: str = "extractive"
    asked: list = field(default_factory=list)

    def ask(self, question, *, k=5, mode="hybrid", generator="auto", history=None):
        self.asked.append((question, k, mode, generator))
        if "hoofdstad" in question:  # the unanswerable one
            return Answer(question=question, answer="Dat staat niet in de artikelen.", abstained=True, generator=self.generator)
        c = Citation(n=1, doc_id="a", title="T", text="Het Antwoord", start=0, end=12, chunk_id="a#1")
        src = [Hit(chunk=_chunk("a#1", "bla het antwoord staat hier bla"), score=1.0, rank=1)]
        return Answer(question=question, answer="Het antwoord staat hier [1].", abstained=False, generator=self.generator,
                      citations=[c], sources=src)


ITEMS = [
    QAItem("q1", "Waar staat het?", "Het antwoord staat hier.", ("het antwoord staat hier",), True, "nl"),
    QAItem("q2", "Where is it?", "Somewhere else entirely.", ("het antwoord staat hier", "niet te vinden zin"), True, "en"),
    QAItem("q3", "Wat is de hoofdstad van Australië?", "Geen antwoord.", (), False, "nl"),
]


def test_run_eval_with_fakes():
    retr, pipe = FakeRetriever(), FakePipeline()
    rep = run_eval(ITEMS, retr, EvalConfig(k=3, mode="hybrid", compare=True), pipeline=pipe)
    # top-10 retrieved once per answerable question and mode, never more
    assert sorted(retr.calls) == sorted((q.question, 10, m) for q in ITEMS[:2] for m in ("bm25", "dense", "hybrid"))
    assert rep["n"] == 3 and rep["k"] == 3
    assert rep["retrieval"] == pytest.approx({"hit@1": 1.0, "hit@3": 1.0, "recall@3": 0.75, "mrr@10": 1.0})
    assert rep["modes"]["bm25"]["retrieval"]["hit@1"] == 0.0 and rep["modes"]["bm25"]["retrieval"]["mrr@10"] == 0.5
    assert rep["hit_at_k_curve"]["bm25"][:2] == [0.0, 1.0] and len(rep["hit_at_k_curve"]["dense"]) == 10
    assert rep["answer"]["cited_evidence"] == 1.0  # citation text is a span; its chunk (from sources) holds the phrase
    assert rep["answer"]["token_f1"] == pytest.approx((1.0 + 0.0) / 2)
    support = rep["abstention"].pop("support")
    assert rep["abstention"] == {"correct_abstain": 1.0, "false_abstain": 0.0, "by_kind": {}}
    assert support["answerable"]["answered"] == 1.0 and support["unanswerable"]["abstained"] == 1.0
    assert rep["per_lang"]["en"]["n"] == 1 and rep["per_lang"]["en"]["retrieval"]["recall@3"] == 0.5
    assert [q[1:] for q in pipe.asked] == [(3, "hybrid", "auto")] * 3
    pq = {r["id"]: r for r in rep["per_question"]}
    assert pq["q2"]["retrieval"]["hybrid"]["evidence_found"] == [True, False]
    assert pq["q3"]["abstained"] is True and "retrieval" not in pq["q3"]
    assert "judge" not in rep
    json.dumps(rep)  # JSON-ready


def test_run_eval_retrieval_only():
    rep = run_eval(ITEMS, FakeRetriever(), EvalConfig(mode="bm25", answers=False))
    assert list(rep["modes"]) == ["bm25"] and rep["retrieval"]["hit@5"] == 1.0
    assert rep["answer"]["token_f1"] is None and rep["abstention"]["correct_abstain"] is None


class FakeLLM:
    def __init__(self, reply):
        self.reply = reply
        self.prompts = []

    def chat(self, messages, **kw):
        self.prompts.append(messages[-1]["content"])
        return self.reply


def test_judge_only_scores_llm_answers_and_is_kept_apart():
    llm = FakeLLM("SCORE: 4")
    rep = run_eval(ITEMS, FakeRetriever(), EvalConfig(), pipeline=FakePipeline(generator="ollama"), judge=LLMJudge(llm))
    assert len(llm.prompts) == 2  # the abstention is not judged
    assert "Het Antwoord" in llm.prompts[0]
    assert rep["judge"]["n_judged"] == 2 and rep["judge"]["faithfulness"] == pytest.approx(0.75)
    assert "judge" not in rep["answer"]
    llm2 = FakeLLM("SCORE: 5")
    rep2 = run_eval(ITEMS, FakeRetriever(), EvalConfig(), pipeline=FakePipeline(), judge=LLMJudge(llm2))
    assert llm2.prompts == [] and rep2["judge"]["n_judged"] == 0 and rep2["judge"]["faithfulness"] is None


# ===================================================================== the real evaluation (CI regression guard)

FLOORS_PATH = REPO_ROOT / "eval" / "floors.json"
QA_PATH = REPO_ROOT / "eval" / "qa.jsonl"


@pytest.fixture(scope="module")
def real_runtime(tmp_path_factory):
    """The shipped articles indexed into a temporary folder, with the configured (offline: fallback) model,
    loaded once for this module."""
    from rag.runtime import open_runtime

    settings = Settings(data_dir=ARTICLES, index_dir=tmp_path_factory.mktemp("eval") / "index",
                        generator="extractive")
    return open_runtime(settings, build_if_missing=True)


@pytest.fixture(scope="module")
def real_report(real_runtime):
    from rag.answer.pipeline import Pipeline

    rt = real_runtime
    pipeline = Pipeline(rt.retriever, None, rt.settings)
    config = EvalConfig(k=5, mode=rt.settings.mode, generator="extractive", compare=True)
    return run_eval(load_qa(QA_PATH), rt.retriever, config, pipeline=pipeline,
                    extra={"settings": {"embed_model": rt.embedder.model_id}})


@pytest.mark.slow
def test_eval_meets_the_floors(real_report):
    """CI fails when a measured metric drops below its floor (or a lower-is-better one rises above
    its ceiling). Floors were set a little under the values measured with the offline defaults;
    after a deliberate change, re-measure and update them (eval/README.md says how)."""
    floors = json.loads(FLOORS_PATH.read_text(encoding="utf-8"))
    rep = real_report
    assert rep["n"] == len(load_qa(QA_PATH))
    assert rep["generators_used"] == {"extractive": rep["n"]} and rep["errors"] == 0
    assert floors["min"], "eval/floors.json has no floors"
    failures = check_floors(rep, floors)
    assert not failures, "evaluation regressed:\n  " + "\n  ".join(failures)


def test_floor_helpers():
    rep = {"k": 5, "mode": "hybrid",
           "modes": {"hybrid": {"retrieval": {"hit@1": 0.5, "hit@5": 0.9, "recall@5": 0.8, "mrr@10": 0.6},
                                "per_lang": {"nl": {"retrieval": {"hit@5": 1.0, "mrr@10": 0.7}}}}},
           "answer": {"token_f1": 0.3, "cited_evidence": 0.7},
           "abstention": {"correct_abstain": 0.02, "false_abstain": 0.1}}
    floors = make_floors(rep, margin=0.03)
    assert floors["min"]["modes.hybrid.retrieval.hit@5"] == 0.87
    assert floors["min"]["abstention.correct_abstain"] == 0.0  # never below 0
    assert floors["max"] == {"abstention.false_abstain": 0.13}
    assert check_floors(rep, floors) == []
    worse = json.loads(json.dumps(rep))
    worse["modes"]["hybrid"]["retrieval"]["hit@5"] = 0.8
    worse["abstention"]["false_abstain"] = 0.2
    msgs = check_floors(worse, floors)
    assert len(msgs) == 2 and "hit@5 = 0.8 is below" in msgs[0] and "false_abstain = 0.2 is above" in msgs[1]
    assert "missing.path = None" in check_floors(rep, {"min": {"missing.path": 0.1}})[0]


@pytest.mark.slow
def test_report_contract(real_report):
    rep = real_report
    assert {"n", "k", "retrieval", "answer", "abstention", "per_question"} <= rep.keys()
    assert set(rep["retrieval"]) == {"hit@1", "hit@5", "recall@5", "mrr@10"}
    assert {"token_f1", "cited_evidence"} <= rep["answer"].keys()
    assert set(rep["abstention"]) == {"correct_abstain", "false_abstain", "by_kind", "support"}
    assert {"n", "answered", "uncertain", "abstained", "nl", "en"} <= set(rep["abstention"]["support"]["answerable"])
    assert set(rep["modes"]) == {"bm25", "dense", "hybrid"}
    assert all(len(c) == 10 for c in rep["hit_at_k_curve"].values())
    assert len(rep["per_question"]) == rep["n"]
    # the curve's point at k equals the summary hit@k: both come from the same stored retrieval
    assert rep["hit_at_k_curve"][rep["mode"]][4] == pytest.approx(rep["retrieval"]["hit@5"])
    json.dumps(rep)


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "rag.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_cli_eval_end_to_end(real_runtime, tmp_path):
    """`rag eval --out x.json --html x.html` on a few questions, reusing the module's index."""
    items = [l for l in QA_PATH.read_text(encoding="utf-8").splitlines() if l.strip()]
    small = tmp_path / "qa.jsonl"
    small.write_text("\n".join(items[:5] + items[-2:]) + "\n", encoding="utf-8")  # 5 answerable, 2 unanswerable
    out_json, out_html = tmp_path / "x.json", tmp_path / "x.html"
    res = _run_cli("eval", "--qa", str(small), "--data", str(ARTICLES), "--index", str(real_runtime.settings.index_dir),
                   "--generator", "extractive", "--compare", "--out", str(out_json), "--html", str(out_html),
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "hit@5" in res.stdout and "hybrid" in res.stdout and "token F1" in res.stdout  # the rich tables
    rep = json.loads(out_json.read_text(encoding="utf-8"))
    assert {"n", "k", "retrieval", "answer", "abstention", "per_question"} <= rep.keys()
    assert rep["n"] == 7 and rep["k"] == 5
    assert set(rep["retrieval"]) == {"hit@1", "hit@5", "recall@5", "mrr@10"}
    assert set(rep["answer"]) >= {"token_f1", "cited_evidence"}
    assert set(rep["abstention"]) == {"correct_abstain", "false_abstain", "by_kind", "support"}
    assert {"n", "answered", "uncertain", "abstained", "nl", "en"} <= set(rep["abstention"]["support"]["answerable"])
    assert set(rep["modes"]) == {"bm25", "dense", "hybrid"}
    page = out_html.read_text(encoding="utf-8")
    assert "<img id='hit-curve'" in page and "data:image/png;base64," in page
    assert "id='per-question'" in page
    first = json.loads(items[0])
    assert html.escape(first["question"]) in page and html.escape(first["answer"]) in page


def test_cli_eval_reports_bad_lines(tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text(_line() + "\n{oops\n" + _line(id="q3", lang=...) + "\n", encoding="utf-8")
    res = _run_cli("eval", "--qa", str(bad), "--index", str(tmp_path / "none"), cwd=tmp_path)
    assert res.returncode == 1
    assert "line 2" in res.stderr and "line 3" in res.stderr and "missing field 'lang'" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_ollama_answers_and_judge_with_fake_ollama(real_runtime, fake_ollama):
    """The LLM path end to end: a (fake) Ollama writes the answers, the judge scores them apart."""
    from rag.llms.ollama import OllamaLLM
    from rag.answer.pipeline import Pipeline

    def reply(body):
        prompt = body["messages"][-1]["content"]
        if "SCORE: <1-5>" in prompt:
            return "SCORE: 5"
        return "Jihyun Park is een Noord-Koreaanse vluchteling en mensenrechtenactivist [1]."

    fake_ollama.reply = reply
    settings = real_runtime.settings.model_copy(update={"ollama_host": fake_ollama.url, "generator": "ollama"})
    llm = OllamaLLM.from_settings(settings)
    items = [it for it in load_qa(QA_PATH) if it.lang == "nl"][:2]
    rep = run_eval(items, real_runtime.retriever, EvalConfig(generator="ollama"),
                   pipeline=Pipeline(real_runtime.retriever, llm, settings), judge=LLMJudge(llm))
    assert rep["generators_used"] == {"ollama": 2} and rep["errors"] == 0
    assert rep["judge"]["n_judged"] == 2 and rep["judge"]["faithfulness"] == 1.0
    assert rep["per_question"][0]["token_f1"] > 0.5  # the fake's answer is close to q001's reference
    assert set(rep["answer"]) == {"token_f1", "cited_evidence", "first_sentence_evidence",
                                  "token_f1_answered", "unrelated_extra_citation"}  # the judge stays apart
