"""The reference Q&A evaluation: measure retrieval and answers on the set (``rag.eval.qaset``), build the report.

Set format (``eval/qa.jsonl``), one JSON object per line::

    {"id": str, "question": str, "answer": str, "evidence": [str, ...], "answerable": bool, "lang": "nl"|"en"}

Other keys are allowed and ignored. Blank lines are skipped.

Measures
--------
Retrieval (answerable questions only). A retrieved passage is *relevant* when it contains one of the
question's evidence phrases, compared after folding case and white space (``fold``).

* ``hit@1`` / ``hit@k``: share of questions with a relevant passage in the top 1 / top k;
* ``recall@k``: per question, the share of its evidence phrases found in the top k (averaged);
* ``mrr@10``: mean of 1 / rank of the first relevant passage within the top 10 (0 when none).

Sentence check (``rag.eval.verification``): ``verification`` -- the share of answer sentences supported,
unsupported and off the question, and the share of answers flagged per reason, for LLM and extractive
answers apart; ``context`` -- context recall: the share of answerable questions whose evidence phrase is in
what the language model reads, with RAG_CONTEXT_TOKENS and with whole chunks, and the passage tokens of each.

Answers. ``token_f1``: SQuAD-style token F1 against the reference answer (answerable questions; an
abstention scores its own text, normally 0). ``cited_evidence``: share of answerable questions whose
citations include a passage holding an evidence phrase. ``correct_abstain``: share of unanswerable
questions the system abstained on; ``false_abstain``: share of answerable questions it abstained on.

Everything here gets its parts (retriever, pipeline, judge) from the caller and never reads the
environment. Top-10 (or top-k when k > 10) passages are retrieved once per question and mode; every
retrieval number, including the hit@k curve for k = 1..10, is computed from those stored results.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from rag.contract import MODES
from rag.errors import LLMError, RagError
from rag.eval.metrics import (
    CURVE_DEPTH,
    _citation_texts,
    evidence_in,
    first_relevant_rank,
    first_statement_has_evidence,
    hit_at_k,
    hit_curve,
    recall_at_k,
    relevance,
    retrieval_metrics,
    strip_citation_markers,
    token_f1,
)
from rag.eval.verification import context_recall, verification_summary
from rag.eval.qaset import LANGS, QAItem, load_qa, parse_qa_lines  # noqa: F401  (re-exported: the set lives in rag.eval.qaset)

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


# ============================================================================ the runner

class AsksQuestions(Protocol):
    def ask(self, question: str, *, k: int = 5, mode: str = "hybrid", generator: str = "auto", history=None): ...


class Searches(Protocol):
    def search(self, query, k: int = 5, mode: str = "hybrid") -> list: ...


Judge = Callable[[QAItem, Any], "dict | None"]  # (item, Answer) -> {"score": 1..5, ...} or None (not judged)


@dataclass
class EvalConfig:
    k: int = 5
    mode: str = "hybrid"
    generator: str = "auto"
    compare: bool = False  # retrieval metrics for all three modes
    answers: bool = True  # False: retrieval only (no pipeline needed)

    @property
    def modes(self) -> list[str]:
        return list(MODES) if self.compare else [self.mode]


@dataclass
class _Retrieved:
    chunk_ids: list[str]
    doc_ids: list[str]
    matches: list[frozenset[int]]


def run_eval(items: Sequence[QAItem], retriever: Searches, config: EvalConfig, *,
             pipeline: AsksQuestions | None = None, judge: Judge | None = None,
             on_progress: ProgressFn | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the evaluation and return the report (a JSON-ready dict; see the module doc for the measures)."""
    from rag.errors import InvalidQuery

    if config.mode not in MODES:
        raise InvalidQuery(f"unknown mode '{config.mode}': use one of {', '.join(MODES)}")
    if config.k < 1:
        raise InvalidQuery("k must be at least 1")
    if config.answers and pipeline is None:
        raise ValueError("run_eval needs a pipeline to evaluate answers (or EvalConfig(answers=False))")
    k = config.k
    depth = max(k, CURVE_DEPTH)
    progress = on_progress or (lambda stage, done, total: None)
    seconds: dict[str, float] = {}

    # ---- retrieval: top `depth` once per question and mode
    answerable = [it for it in items if it.answerable]
    retrieved: dict[str, dict[str, _Retrieved]] = {m: {} for m in config.modes}
    for mode in config.modes:
        t0 = time.perf_counter()
        stage = f"retrieval ({mode})"
        progress(stage, 0, len(answerable))
        for i, it in enumerate(answerable, 1):
            hits = retriever.search(it.question, k=depth, mode=mode)
            retrieved[mode][it.id] = _Retrieved(
                chunk_ids=[h.chunk.chunk_id for h in hits], doc_ids=[h.chunk.doc_id for h in hits],
                matches=relevance([h.chunk.text for h in hits], it.evidence))
            progress(stage, i, len(answerable))
        seconds[f"retrieval_{mode}"] = time.perf_counter() - t0

    def mode_block(mode: str) -> dict[str, Any]:
        rs = retrieved[mode]
        allq = [(rs[it.id].matches, len(it.evidence)) for it in answerable]
        block: dict[str, Any] = {"retrieval": retrieval_metrics(allq, k), "hit_at_k_curve": hit_curve(allq), "per_lang": {}}
        for lang in LANGS:
            lq = [(rs[it.id].matches, len(it.evidence)) for it in answerable if it.lang == lang]
            if lq:
                block["per_lang"][lang] = {"n": len(lq), "retrieval": retrieval_metrics(lq, k)}
        return block

    modes_report = {m: mode_block(m) for m in config.modes}

    # ---- answers
    answers: dict[str, dict[str, Any]] = {}
    if config.answers:
        t0 = time.perf_counter()
        progress("answers", 0, len(items))
        for i, it in enumerate(items, 1):
            answers[it.id] = _answer_one(it, pipeline, config, judge)
            progress("answers", i, len(items))
        seconds["answers"] = time.perf_counter() - t0

    # ---- per question
    per_question = []
    for it in items:
        row: dict[str, Any] = {"id": it.id, "lang": it.lang, "answerable": it.answerable, "question": it.question,
                               "reference": it.answer, "evidence": list(it.evidence)}
        if it.answerable:
            row["retrieval"] = {}
            for mode in config.modes:
                r = retrieved[mode][it.id]
                found = set().union(*r.matches[:k]) if r.matches[:k] else set()
                row["retrieval"][mode] = {
                    "first_relevant_rank": first_relevant_rank(r.matches),
                    "hit@1": hit_at_k(r.matches, 1) == 1.0,
                    f"hit@{k}": hit_at_k(r.matches, k) == 1.0,
                    f"recall@{k}": recall_at_k(r.matches, len(it.evidence), k),
                    "evidence_found": [i in found for i in range(len(it.evidence))],
                    "top": [{"chunk_id": c, "relevant": bool(m)} for c, m in zip(r.chunk_ids[:k], r.matches[:k])],
                }
        if it.id in answers:
            row.update(answers[it.id])
        per_question.append(row)

    # ---- summary
    main = modes_report[config.mode]
    report: dict[str, Any] = {
        "n": len(items),
        "n_answerable": len(answerable),
        "n_unanswerable": len(items) - len(answerable),
        "k": k,
        "mode": config.mode,
        "generator": config.generator,
        "retrieval": main["retrieval"],
        "answer": _answer_summary([it for it in items if it.answerable], answers),
        "abstention": _abstention_summary(items, answers),
        "per_lang": {},
        "modes": {m: {"retrieval": b["retrieval"], "per_lang": b["per_lang"]} for m, b in modes_report.items()},
        "hit_at_k_curve": {m: b["hit_at_k_curve"] for m, b in modes_report.items()},
        "per_question": per_question,
    }
    for lang in LANGS:
        lang_items = [it for it in items if it.lang == lang]
        if not lang_items:
            continue
        report["per_lang"][lang] = {
            "n": len(lang_items),
            "retrieval": main["per_lang"].get(lang, {}).get("retrieval", retrieval_metrics([], k)),
            "answer": _answer_summary([it for it in lang_items if it.answerable], answers),
            "abstention": _abstention_summary(lang_items, answers),
        }
    if answers:
        report["verification"] = verification_summary(list(answers.values()))
        if hasattr(pipeline, "passages_for"):
            report["context"] = context_recall(items, pipeline, k=k, mode=config.mode)
        report["generators_used"] = dict(Counter(a["generator"] for a in answers.values() if a.get("generator")))
        errors = [qid for qid, a in answers.items() if a.get("error")]
        report["errors"] = len(errors)
    if judge is not None and config.answers:
        report["judge"] = _judge_summary(answers)
    if extra:
        report.update(extra)
    report["seconds"] = {key: round(v, 2) for key, v in seconds.items()}
    return report


def _answer_one(it: QAItem, pipeline: AsksQuestions, config: EvalConfig, judge: Judge | None) -> dict[str, Any]:
    try:
        ans = pipeline.ask(it.question, k=config.k, mode=config.mode, generator=config.generator)
    except (LLMError, RagError) as e:  # one failing question must not end a long run
        return {"answer": "", "abstained": False, "support": None, "generator": None, "citations": [],
                "error": f"{type(e).__name__}: {e}",
                "token_f1": 0.0 if it.answerable else None, "cited_evidence": False if it.answerable else None,
                "first_sentence_evidence": False if it.answerable else None}
    cites = []
    any_evidence = False
    for c, text in _citation_texts(ans):
        holds = bool(evidence_in(text, it.evidence)) if it.evidence else False
        any_evidence = any_evidence or holds
        cites.append({"n": c.n, "doc_id": c.doc_id, "title": c.title, "chunk_id": getattr(c, "chunk_id", ""),
                      "text": c.text, "has_evidence": holds})
    row: dict[str, Any] = {
        "answer": ans.answer,
        "abstained": bool(ans.abstained),
        "support": getattr(ans, "support", None) or ("abstained" if ans.abstained else "answered"),
        "generator": ans.generator,
        "citations": cites,
        "token_f1": token_f1(strip_citation_markers(ans.answer), it.answer) if it.answerable else None,
        "cited_evidence": any_evidence if it.answerable else None,
        "first_sentence_evidence": (first_statement_has_evidence(ans.answer, it.evidence)
                                    if it.answerable and not ans.abstained else (False if it.answerable else None)),
        "warnings": list(getattr(ans, "warnings", []) or []),
        "verdicts": list(getattr(ans, "verdicts", []) or []),
        "flags": list(getattr(ans, "flags", []) or []),
    }
    if judge is not None:
        try:
            row["judge"] = judge(it, ans)
        except LLMError as e:
            row["judge"] = {"error": f"{type(e).__name__}: {e}"}
    return row


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _answer_summary(answerable: Sequence[QAItem], answers: dict[str, dict]) -> dict[str, float | None]:
    rows = [answers[it.id] for it in answerable if it.id in answers]
    answered = [r for r in rows if not r["abstained"]]
    return {
        "token_f1": _mean([r["token_f1"] for r in rows]),
        "cited_evidence": _mean([float(r["cited_evidence"]) for r in rows]),
        "first_sentence_evidence": _mean([float(r.get("first_sentence_evidence") or False) for r in rows]),
        "token_f1_answered": _mean([r["token_f1"] for r in answered]),  # leaving out abstentions
        # answers citing more than one passage, one of which holds no evidence phrase (an unrelated extra citation)
        "unrelated_extra_citation": _mean([float(len(r["citations"]) > 1 and not all(c["has_evidence"]
                                                                                  for c in r["citations"]))
                                           for r in answered]),
    }


def _abstention_summary(items: Sequence[QAItem], answers: dict[str, dict]) -> dict[str, Any]:
    def rate(selected) -> float | None:
        return _mean([float(answers[it.id]["abstained"]) for it in selected if it.id in answers])

    una = [it for it in items if not it.answerable]
    ans = [it for it in items if it.answerable]
    out: dict[str, Any] = {"correct_abstain": rate(una), "false_abstain": rate(ans)}
    kinds = sorted({it.kind for it in una if it.kind})
    out["by_kind"] = {k: {"n": sum(1 for it in una if it.kind == k), "correct_abstain": rate([it for it in una if it.kind == k])}
                      for k in kinds}
    out["support"] = support_table(items, answers)
    return out


SUPPORTS = ("answered", "uncertain", "abstained")


def support_table(items: Sequence[QAItem], answers: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """Share of each ``support`` value per kind of question (answerable, off-topic, near-topic), overall
    and per language: ``{"answerable": {"n", "answered", "uncertain", "abstained", "uncertain_or_abstained", "nl": {...}, ...}}``."""
    def shares(selected: list[QAItem]) -> dict[str, Any]:
        rows = [answers[it.id] for it in selected if it.id in answers]
        out = {"n": len(rows), **{k: _mean([float(r.get("support") == k) for r in rows]) for k in SUPPORTS}}
        out["uncertain_or_abstained"] = _mean([float(r.get("support") != "answered") for r in rows])
        return out

    table: dict[str, dict[str, Any]] = {}
    for kind in sorted({"answerable" if it.answerable else (it.kind or "unanswerable") for it in items}):
        sel = [it for it in items if ("answerable" if it.answerable else (it.kind or "unanswerable")) == kind]
        table[kind] = shares(sel)
        for lang in sorted({it.lang for it in sel}):
            table[kind][lang] = shares([it for it in sel if it.lang == lang])
    return table


def _judge_summary(answers: dict[str, dict]) -> dict[str, Any]:
    judged = [a["judge"] for a in answers.values() if isinstance(a.get("judge"), dict) and "score" in a["judge"]]
    return {
        "n_judged": len(judged),
        "faithfulness": _mean([(j["score"] - 1) / 4 for j in judged]),  # 1..5 mapped to 0..1
        "score_mean": _mean([float(j["score"]) for j in judged]),
        "note": "LLM judge of faithfulness to the cited passages; an opinion, not a measured metric"
                + ("" if judged else " (nothing judged: only cited answers written by the LLM are judged, and a reply without a "
                                  "score does not count)"),
    }
