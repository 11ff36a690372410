"""CI floors for ``rag eval``: the report values CI guards, with a margin (eval/floors.json)."""

from __future__ import annotations

from typing import Any

from rag.eval.metrics import CURVE_DEPTH

# report paths (or their ends) where lower is better: guarded by a ceiling, not a floor
LOWER_IS_BETTER = ("false_abstain", "answerable.abstained", "unrelated_extra_citation")
# the targets the answers are held to (issue 19): the floor (or ceiling) is the target itself, so a
# re-measure cannot lower it
TARGETS = {
    "abstention.support.answerable.answered": 0.85,
    "abstention.support.answerable.abstained": 0.03,
    "abstention.support.near-topic.uncertain_or_abstained": 0.60,
    "abstention.support.near-topic.nl.uncertain_or_abstained": 0.60,  # in each language separately
    "abstention.support.near-topic.en.uncertain_or_abstained": 0.60,
    "abstention.support.off-topic.abstained": 0.95,
}


def lower_is_better(path: str) -> bool:
    return path.endswith(LOWER_IS_BETTER)


def _at(report: dict, dotted: str):
    node: Any = report
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def floor_paths(report: dict) -> list[str]:
    """The report values the CI guards: retrieval per mode (and per language for the main mode), answers,
    abstention."""
    k = report["k"]
    keys = ["hit@1", f"hit@{k}", f"recall@{k}", f"mrr@{CURVE_DEPTH}"]
    paths = [f"modes.{m}.retrieval.{key}" for m in report.get("modes", {}) for key in keys]
    main = report.get("mode")
    for lang in report.get("modes", {}).get(main, {}).get("per_lang", {}):
        paths += [f"modes.{main}.per_lang.{lang}.retrieval.hit@{k}", f"modes.{main}.per_lang.{lang}.retrieval.mrr@{CURVE_DEPTH}"]
    paths += ["answer.token_f1", "answer.cited_evidence", "answer.first_sentence_evidence",
              "answer.unrelated_extra_citation", "abstention.correct_abstain", "abstention.false_abstain",
              "context.budget.recall", *TARGETS]
    paths += [f"abstention.by_kind.{kind}.correct_abstain" for kind in report.get("abstention", {}).get("by_kind", {})]
    return [p for p in paths if _at(report, p) is not None]


def make_floors(report: dict, margin: float = 0.03) -> dict[str, Any]:
    """Floors (``min``) a margin under the measured values, ceilings (``max``) a margin over the
    lower-is-better ones; ``measured`` keeps the values they came from."""
    floors: dict[str, Any] = {"min": {}, "max": {}, "measured": {}}
    for p in floor_paths(report):
        v = float(_at(report, p))
        floors["measured"][p] = round(v, 4)
        if lower_is_better(p):
            floors["max"][p] = TARGETS.get(p, round(min(1.0, v + margin), 3))
        else:
            floors["min"][p] = TARGETS.get(p, round(max(0.0, v - margin), 3))
    return floors


def check_floors(report: dict, floors: dict) -> list[str]:
    """One message per value below its floor (``min``) or above its ceiling (``max``); empty when all pass."""
    failures = []
    for p, floor in floors.get("min", {}).items():
        v = _at(report, p)
        if v is None or v < floor:
            failures.append(f"{p} = {_r(v)} is below its floor {floor}")
    for p, ceiling in floors.get("max", {}).items():
        v = _at(report, p)
        if v is None or v > ceiling:
            failures.append(f"{p} = {_r(v)} is above its ceiling {ceiling}")
    return failures


def _r(v):
    return round(v, 4) if isinstance(v, float) else v
