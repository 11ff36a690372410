"""Calibrate the abstention decision (rag/answer/decide.py) on eval/qa.jsonl.

    HF_HUB_OFFLINE=1 .venv/bin/python eval/calibrate_abstention.py [--qa eval/qa.jsonl]

Every question is asked extractively with the thresholds at 0, so that ``Answer.relevance`` holds the
decision's score (the best dense cosine of the question with a passage or one of its sentences). Then, for a grid of thresholds, the
share of abstentions is printed per group: answerable questions (false abstention, per language) and
unanswerable ones by kind (off-topic, near-topic) and language. Dutch questions use the Dutch
threshold; other languages use the other one (cross-lingual cosines run lower).
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

from rag.config import Settings  # noqa: E402
from rag.embed.embedders import load_embedder  # noqa: E402
from rag.eval.evaluation import load_qa  # noqa: E402
from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.runtime import open_runtime  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qa", default=str(REPO / "eval" / "qa.jsonl"))
    ap.add_argument("--dutch", default="0.81,0.82,0.825,0.83,0.835,0.84,0.85")
    ap.add_argument("--other", default="0.79,0.80,0.805,0.81,0.815,0.82,0.83")
    a = ap.parse_args()
    items = load_qa(a.qa)
    s = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp()), abstain_threshold=-1.0)
    emb = load_embedder(s)
    rt = open_runtime(s, embedder=emb, build_if_missing=True)
    pipe = Pipeline(rt.retriever, None, s)
    rows = [(it, pipe.ask(it.question, generator="extractive").relevance or 0.0) for it in items]

    def group(it) -> str:
        return "answerable" if it.answerable else (it.kind or "unanswerable")

    groups = sorted({(group(it), it.lang) for it, _ in rows})
    print("threshold (nl / other) | " + " | ".join(f"{g} {lang}" for g, lang in groups) + " | false abstain")
    for tn, to in zip((float(x) for x in a.dutch.split(",")), (float(x) for x in a.other.split(","))):
        cells = []
        for g, lang in groups:
            sel = [score for it, score in rows if group(it) == g and it.lang == lang]
            ab = sum(score < (tn if lang == "nl" else to) for score in sel)
            cells.append(f"{ab}/{len(sel)}")
        ans = [(it, score) for it, score in rows if it.answerable]
        fa = sum(score < (tn if it.lang == "nl" else to) for it, score in ans) / max(1, len(ans))
        print(f"{tn:.3f} / {to:.3f} | " + " | ".join(cells) + f" | {fa:.3f}")


if __name__ == "__main__":
    main()
