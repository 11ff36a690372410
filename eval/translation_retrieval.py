"""Does the LLM's Dutch translation of an English question help retrieval? (Before paying a model call.)

    HF_HUB_OFFLINE=1 .venv/bin/python eval/translation_retrieval.py --llm-url http://127.0.0.1:8081/v1 \
        --model qwen2.5-coder-0.5b

For every English question of eval/qa.jsonl the model writes the Dutch phrasing (the rewrite prompt of
rag/answer/rewrite.py, as the pipeline used to for every English question); retrieval then runs with the
English question alone and with both phrasings. Prints hit@1, hit@5, MRR@10 and context recall (the share of
answerable questions whose evidence phrase is in what the model reads) for each, the seconds the rewrite
calls took, and the abstention decision on the unanswerable ones.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.answer.pipeline import Pipeline, Turn  # noqa: E402
from rag.answer.rewrite import Rewrite, rewrite_with_llm  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.eval.metrics import evidence_in, first_relevant_rank  # noqa: E402
from rag.eval.qaset import load_qa  # noqa: E402
from rag.llms.openai import OpenAILLM  # noqa: E402
from rag.runtime import open_runtime  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--qa", default=str(REPO / "eval" / "qa.jsonl"))
    a = ap.parse_args()
    settings = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp(prefix="rag-tr-")),
                        openai_base_url=a.llm_url, llm_model=a.model, llm_timeout=300)
    rt = open_runtime(settings, build_if_missing=True)
    llm = OpenAILLM.from_settings(settings)
    pipeline = Pipeline(rt.retriever, None, settings)
    items = [it for it in load_qa(Path(a.qa)) if it.lang == "en"]
    rows = {"english": [], "english+dutch": []}
    seconds = []
    for it in items:
        t = time.perf_counter()
        rw = rewrite_with_llm(llm, it.question, [], max_tokens=200)
        seconds.append(time.perf_counter() - t)
        for name, rewrite in (("english", Rewrite(it.question)),
                              ("english+dutch", Rewrite(it.question, rw.dutch, method=rw.method))):
            turn = Turn(it.question, "en", "extractive", [], False, rewrite=rewrite)
            pipeline._retrieve(turn, 10, "hybrid")
            pipeline._decide(turn)
            ranks = first_relevant_rank([evidence_in(h.chunk.text, it.evidence) for h in turn.hits]) \
                if it.answerable else None
            read = pipeline._context(turn, pipeline._budget()) if turn.decision.support != "abstained" else []
            recalled = bool(evidence_in("\n".join(h.chunk.text for h in read), it.evidence)) if it.answerable else None
            rows[name].append((it, ranks, recalled, turn.decision.support))
        print(f"{it.id}: {rw.dutch!r} ({seconds[-1]:.1f} s)", flush=True)
    for name, r in rows.items():
        ans = [x for x in r if x[0].answerable]
        un = [x for x in r if not x[0].answerable]
        hit1 = sum(1 for x in ans if x[1] == 1) / len(ans)
        hit5 = sum(1 for x in ans if x[1] and x[1] <= 5) / len(ans)
        mrr = sum(1 / x[1] for x in ans if x[1]) / len(ans)
        rec = sum(1 for x in ans if x[2]) / len(ans)
        abst = sum(1 for x in un if x[3] == "abstained") / max(1, len(un))
        answered = sum(1 for x in ans if x[3] == "answered") / len(ans)
        print(f"{name:14s} answerable {len(ans)}: hit@1 {hit1:.3f} hit@5 {hit5:.3f} mrr@10 {mrr:.3f} "
              f"context recall {rec:.3f} answered {answered:.3f}; unanswerable {len(un)}: abstained {abst:.3f}")
    print(f"rewrite call: median {statistics.median(seconds):.1f} s, total {sum(seconds):.0f} s")


if __name__ == "__main__":
    main()
