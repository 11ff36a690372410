"""Calibrate the "uncertain" band of the decide step (rag/answer/decide.py) on eval/qa.jsonl.

    HF_HUB_OFFLINE=1 .venv/bin/python eval/calibrate_uncertain.py [--qa eval/qa.jsonl]

Every question is asked once, extractively, with the configured abstention thresholds; the decide
step's signals are recorded (``Evidence.gap``: how far the best sentence leads the next, as a share of
its score; ``Evidence.typed_margin``: for number/date questions, the best sentence holding one minus the
best, answer-type bonus left out). Then, for a grid of the two limits, the shares of each outcome are
printed per kind of question and language, as the issue's targets read them: answerable questions
*answered* (not uncertain, not abstained), near-topic and off-topic questions *uncertain or abstained*.
The row marked * is the setting in use (``UNCERTAIN_GAP``, ``UNCERTAIN_TYPED_MARGIN``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag.answer.decide import UNCERTAIN_GAP, UNCERTAIN_TYPED_MARGIN, Decider  # noqa: E402
from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.embed.embedders import load_embedder  # noqa: E402
from rag.eval.qaset import load_qa  # noqa: E402
from rag.runtime import open_runtime  # noqa: E402


def outcome(decision, decider: Decider) -> str:
    """The support this decision would have under ``decider``'s uncertain band."""
    if not decision.answer:
        return "abstained"
    return "uncertain" if decider.uncertain_why(decision.evidence) else "answered"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qa", default=str(REPO / "eval" / "qa.jsonl"))
    ap.add_argument("--gaps", default="0,0.02,0.03,0.04,0.05,0.06,0.08")
    ap.add_argument("--margins", default="0.03,0.05,0.08,1")
    a = ap.parse_args()
    items = load_qa(a.qa)
    s = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp()))
    rt = open_runtime(s, embedder=load_embedder(s), build_if_missing=True)
    pipe = Pipeline(rt.retriever, None, s)
    seen = []
    decide = pipe.decider.decide
    pipe.decider.decide = lambda *args, **kw: seen.append(decide(*args, **kw)) or seen[-1]
    rows = []
    for it in items:
        seen.clear()
        pipe.ask(it.question, generator="extractive")
        rows.append((it, seen[-1]))

    def group(it) -> str:
        return "answerable" if it.answerable else (it.kind or "unanswerable")

    groups = sorted({(group(it), it.lang) for it, _ in rows})
    print("gap / typed margin | " + " | ".join(
        f"{g} {lang} {'answered' if g == 'answerable' else 'uncertain+abstained'}" for g, lang in groups)
        + " | answerable abstained")
    for gap in (float(x) for x in a.gaps.split(",")):
        for margin in (float(x) for x in a.margins.split(",")):
            decider = Decider(uncertain_gap=gap, typed_margin=margin)
            cells = []
            for g, lang in groups:
                sel = [outcome(d, decider) for it, d in rows if group(it) == g and it.lang == lang]
                hit = sum((o == "answered") if g == "answerable" else (o != "answered") for o in sel)
                cells.append(f"{hit}/{len(sel)} ({hit / max(1, len(sel)):.2f})")
            ans = [outcome(d, decider) for it, d in rows if it.answerable]
            mark = " *" if (gap, margin) == (UNCERTAIN_GAP, UNCERTAIN_TYPED_MARGIN) else ""
            print(f"{gap:.2f} / {margin:.2f}{mark} | " + " | ".join(cells)
                  + f" | {ans.count('abstained') / max(1, len(ans)):.3f}")


if __name__ == "__main__":
    main()
