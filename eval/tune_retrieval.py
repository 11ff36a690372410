"""Grid over chunk size/overlap and hybrid fusion weights on eval/qa.jsonl (answerable questions).

    HF_HUB_OFFLINE=1 .venv/bin/python eval/tune_retrieval.py [--chunks 250:48,150:30] [--out eval/tuning.json]

For each chunk setting an index of data/articles is built in a temporary folder with the configured
embedding model; every fusion setting is then scored with the real Retriever (query vectors are
cached by the embedder, so the grid is cheap). Prints hit@1 / hit@5 / MRR@10 overall and per language.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag.config import Settings  # noqa: E402
from rag.embed.embedders import load_embedder  # noqa: E402
from rag.eval.evaluation import EvalConfig, load_qa, run_eval  # noqa: E402
from rag.retrieve.retriever import FusionParams, Retriever  # noqa: E402
from rag.runtime import build, open_runtime  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", default="250:48,200:40,150:30,120:24,350:60")
    ap.add_argument("--weights", default="0.3,0.4,0.5,0.6,0.7,0.8")
    ap.add_argument("--candidates", default="50")
    ap.add_argument("--qa", default=str(REPO / "eval" / "qa.jsonl"))
    ap.add_argument("--out")
    a = ap.parse_args()
    items = load_qa(a.qa)
    base = Settings(data_dir=REPO / "data" / "articles")
    embedder = load_embedder(base)
    rows = []
    for spec in a.chunks.split(","):
        size, overlap = (int(x) for x in spec.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            s = base.model_copy(update={"index_dir": Path(tmp), "chunk_tokens": size, "chunk_overlap_tokens": overlap})
            build(s, embedder)
            rt = open_runtime(s, embedder=embedder)
            n_chunks = len(rt.store.chunks)
            for method in ("score", "rrf"):
                for dw in (float(x) for x in a.weights.split(",")):
                    for cand in (int(x) for x in a.candidates.split(",")):
                        fp = FusionParams(bm25_weight=round(1 - dw, 2), dense_weight=dw, candidates=cand, method=method)
                        rep = run_eval(items, Retriever(rt.store, embedder, fp),
                                       EvalConfig(k=5, mode="hybrid", compare=False, answers=False))
                        m = rep["modes"]["hybrid"]
                        row = {"chunk_tokens": size, "overlap": overlap, "chunks": n_chunks, "fusion": method,
                               "dense_weight": dw, "candidates": cand,
                               "hit@1": m["retrieval"]["hit@1"], "hit@5": m["retrieval"]["hit@5"],
                               "mrr@10": m["retrieval"]["mrr@10"],
                               "nl_hit@1": m["per_lang"]["nl"]["retrieval"]["hit@1"],
                               "nl_hit@5": m["per_lang"]["nl"]["retrieval"]["hit@5"],
                               "en_hit@1": m["per_lang"]["en"]["retrieval"]["hit@1"],
                               "en_hit@5": m["per_lang"]["en"]["retrieval"]["hit@5"]}
                        rows.append(row)
                        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                              flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
