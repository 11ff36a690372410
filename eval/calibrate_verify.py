"""The address check's features on the extractive answers of eval/qa.jsonl, for choosing its thresholds.

    HF_HUB_OFFLINE=1 .venv/bin/python eval/calibrate_verify.py

For every question the decide step does not abstain on, the first excerpt of the extractive answer is
checked against the question (``rag.answer.verify.Verifier.address_features``). Printed per group --
answerable questions whose first excerpt holds an evidence phrase ("should answer"), answerable ones
whose excerpt does not ("wrong excerpt"), near-topic questions ("should not") -- the share that passes
the kind and names checks, and the focus and question-similarity values at quantiles, then the share of
each group that the address check passes at a grid of (min_focus, min_question_similarity).
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.answer.check import CITE  # noqa: E402
from rag.answer.pipeline import Pipeline, Turn  # noqa: E402
from rag.answer.question import asked  # noqa: E402
from rag.answer.verdicts import Verdict  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.eval.metrics import evidence_in  # noqa: E402
from rag.eval.qaset import load_qa  # noqa: E402
from rag.runtime import open_runtime  # noqa: E402
from rag.text import detect_language  # noqa: E402

settings = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp(prefix="rag-cal-")))
rt = open_runtime(settings, build_if_missing=True)
p = Pipeline(rt.retriever, None, settings)
v = p.verifier
rows = []
for it in load_qa(REPO / (sys.argv[1] if len(sys.argv) > 1 else "eval/qa.jsonl")):
    turn = Turn(it.question, detect_language(it.question), "extractive", [], False)
    p._rewrite(turn)
    p._retrieve(turn, 5, "hybrid")
    p._decide(turn)
    if turn.decision.support == "abstained":
        continue
    ex = p.extractor.answer(turn.queries, turn.hits, turn.ranked)
    first = ex.sentences[0]
    clean = " ".join(CITE.sub(" ", first.text).split())
    verdict = Verdict(first.text, 0, 0, "supported", "", [first.n],
                      {"n": first.n, "doc_id": first.hit.chunk.doc_id, "start": first.start, "end": first.end,
                       "text": first.text})
    q = asked(it.question)
    f = v.address_features(q, v._focus_tokens(it.question, q.names), p.retriever.embedder.embed_query(it.question),
                           clean, verdict, turn.hits)
    group = ("should answer" if evidence_in(ex.text, it.evidence) else "wrong excerpt") if it.answerable \
        else (it.kind or "unanswerable")
    rows.append((group, it.lang, q.kind, f, it.id, it.question))
groups = sorted({r[0] for r in rows})
for g in groups:
    rs = [r for r in rows if r[0] == g]
    foc = np.array([r[3]["focus"] if r[3]["focus"] is not None else 1.0 for r in rs])
    sim = np.array([r[3]["question_similarity"] for r in rs])
    print(f"{g:14s} n={len(rs):3d} kind {np.mean([r[3]['kind'] for r in rs]):.2f} names "
          f"{np.mean([r[3]['names'] for r in rs]):.2f} counted {np.mean([r[3]['counted'] is not False for r in rs]):.2f} focus q10/50/90 {np.quantile(foc, [.1, .5, .9]).round(2)} "
          f"qsim q10/50/90 {np.quantile(sim, [.1, .5, .9]).round(3)}")
print("\npasses the address check (kind and names and (focus >= f or qsim >= s)):")
for f_min in (0.2, 0.3, 0.34, 0.4, 0.5):
    for s_min in (0.82, 0.84, 0.86, 0.88, 1.0):
        share = {}
        for g in groups:
            rs = [r for r in rows if r[0] == g]
            ok = [r[3]["kind"] and r[3]["names"] and r[3]["counted"] is not False and ((r[3]["focus"] is None) or r[3]["focus"] >= f_min
                                                      or r[3]["question_similarity"] >= s_min) for r in rs]
            share[g] = np.mean(ok)
        print(f"focus>={f_min:.2f} qsim>={s_min:.2f}: " + "  ".join(f"{g} {share[g]:.2f}" for g in groups))
if os.environ.get("SHOW"):
    for r in rows:
        if r[0] == os.environ["SHOW"]:
            print(r[4], r[2], {k: (round(x, 3) if isinstance(x, float) else x) for k, x in r[3].items()}, r[5])
