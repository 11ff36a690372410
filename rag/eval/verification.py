"""What ``rag eval`` reports about the sentence check and what the model reads.

* :func:`verification_summary`: for the answers of a run, the share of sentences supported, unsupported
  and off the question, and the share of answers flagged per reason (``rag.answer.degenerate``), for
  LLM answers and extractive ones apart.
* :func:`context_recall`: the share of answerable questions whose evidence phrase is inside what the
  language model reads (``Pipeline.passages_for``), with the budget in force and with whole chunks (the
  prompt before), and the passage tokens of each (estimated, ``rag.llms.tokens``). No model is called.
* :func:`score_replay`: a labelled cassette of a real model's answers (``rag.llms.replay``) replayed
  through the pipeline: how the check's decisions compare with the labels a person gave.

Labels (tests/data/llm/README.md): per answer ``label`` -- ``good`` (true to the passages and answers the
question), ``wrong`` (says something the passages do not), ``off_question`` (true, but no answer to what
was asked), ``degenerate`` (empty, a bare citation, a loop, a copied passage, another language, garbled),
``abstained`` (the model said the articles don't answer) -- and per sentence of the raw reply
``supported`` / ``unsupported`` / ``off_question``.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from typing import Any, Sequence

from rag.eval.metrics import evidence_in
from rag.text import fold

BAD = ("wrong", "off_question", "degenerate")
VERDICTS = ("supported", "unsupported", "off_question")


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def verification_summary(rows: Sequence[dict]) -> dict[str, Any]:
    """``rows``: per-question answer rows of ``rag eval`` (with ``generator``, ``verdicts``, ``flags``)."""
    out: dict[str, Any] = {}
    for name, selected in (("llm", [r for r in rows if r.get("generator") not in (None, "extractive")
                                    or any(f.get("reason") == "no_supported_sentence" for f in r.get("flags") or [])]),
                           ("extractive", [r for r in rows if r.get("generator") == "extractive"])):
        verdicts = [v["verdict"] for r in selected for v in (r.get("verdicts") or [])]
        counts = Counter(verdicts)
        answers = [r for r in selected if not r.get("abstained")]
        flags = Counter(f["reason"] for r in answers for f in {f["reason"]: f for f in (r.get("flags") or [])}.values())
        out[name] = {
            "answers": len(answers),
            "sentences": len(verdicts),
            **{f"{v}_share": (counts[v] / len(verdicts) if verdicts else None) for v in VERDICTS},
            "flagged_answers": _mean([float(bool(r.get("flags"))) for r in answers]),
            "flags": {reason: n / len(answers) for reason, n in sorted(flags.items())} if answers else {},
        }
    return out


def context_recall(items: Sequence, pipeline, *, k: int, mode: str, count_tokens=None) -> dict[str, Any]:
    """See the module doc; ``items`` are QAItems, ``pipeline`` a ``rag.answer.pipeline.Pipeline``."""
    if count_tokens is None:
        from rag.llms.tokens import count_tokens
    out: dict[str, Any] = {}
    for name, budget in (("budget", "setting"), ("whole_chunks", None)):
        found, tokens, by_lang = [], [], {}
        for it in items:
            passages = pipeline.passages_for(it.question, k=k, mode=mode, budget=budget)
            if passages:
                tokens.append(sum(count_tokens(h.chunk.text) for h in passages))
            if it.answerable:
                ok = bool(evidence_in("\n".join(h.chunk.text for h in passages), it.evidence))
                found.append(ok)
                by_lang.setdefault(it.lang, []).append(ok)
        out[name] = {"recall": _mean([float(x) for x in found]),
                     "per_lang": {lang: _mean([float(x) for x in v]) for lang, v in sorted(by_lang.items())},
                     "median_passage_tokens": statistics.median(tokens) if tokens else None,
                     "mean_passage_tokens": _mean([float(t) for t in tokens])}
    out["budget_tokens"] = getattr(pipeline.settings, "context_tokens", None)
    return out


# ----------------------------------------------------------------------------- labelled replays

def _key(text: str) -> str:
    return " ".join(re.findall(r"\w+", fold(re.sub(r"\[[^\]]*\]", " ", text))))


def score_replay(records: Sequence[dict], answers: dict[str, Any]) -> dict[str, Any]:
    """``records``: a labelled cassette; ``answers``: record id -> the pipeline's Answer for its question."""
    rows = []
    for r in records:
        a = answers.get(r["id"])
        if a is None or not r.get("label"):
            continue
        replaced = a.generator == "extractive" and r.get("raw") is not None
        rows.append({"id": r["id"], "label": r["label"], "kind": r.get("kind"), "answerable": r.get("answerable"),
                     "support": a.support, "replaced": replaced, "flags": [f["reason"] for f in a.flags],
                     "sentences": _sentence_pairs(r.get("sentences") or [], a, replaced)})
    bad = [x for x in rows if x["label"] in BAD]
    good = [x for x in rows if x["label"] == "good"]
    off_topic = [x for x in rows if x.get("kind") == "off-topic"]
    pairs = [p for x in rows for p in x["sentences"]]
    tp = sum(1 for lab, got in pairs if lab != "supported" and got != "supported")
    fp = sum(1 for lab, got in pairs if lab == "supported" and got != "supported")
    fn = sum(1 for lab, got in pairs if lab != "supported" and got == "supported")
    return {
        "answers": len(rows),
        "labels": dict(Counter(x["label"] for x in rows)),
        "bad_not_answered": _mean([float(x["support"] != "answered") for x in bad]),
        "good_answered": _mean([float(x["support"] == "answered") for x in good]),
        "off_topic_abstained": _mean([float(x["support"] == "abstained") for x in off_topic]),
        "sentences": {"labelled": len(pairs), "precision": tp / (tp + fp) if tp + fp else None,
                      "recall": tp / (tp + fn) if tp + fn else None,
                      "note": "positive = a sentence that is not supported (unsupported or off the question)"},
        "missed": [{"id": x["id"], "label": x["label"], "support": x["support"]} for x in bad if x["support"] == "answered"]
                  + [{"id": x["id"], "label": x["label"], "support": x["support"]} for x in good if x["support"] != "answered"],
    }


def _sentence_pairs(labelled: list[dict], answer: Any, replaced: bool) -> list[tuple[str, str]]:
    """(label, verdict) for each labelled sentence: the verdict of the answer sentence with the same words;
    every sentence of an answer that was replaced (no sentence supported) counts as not supported."""
    verdicts = {_key(v["sentence"]): v["verdict"] for v in (answer.verdicts or [])}
    pairs = []
    for s in labelled:
        if answer.abstained:
            continue
        key = _key(s["text"])
        if replaced:
            got = "unsupported"
        else:
            got = verdicts.get(key) or next((v for k, v in verdicts.items() if key and (key in k or k in key)),
                                            "supported")  # a sentence the check did not see was not flagged
        pairs.append((s["label"], got))
    return pairs
