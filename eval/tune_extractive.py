"""Grid over the extractive answerer's weights on eval/qa.jsonl (answerable questions).

    HF_HUB_OFFLINE=1 .venv/bin/python eval/tune_extractive.py --dense 0.4,0.5,0.6 --bonus 0.2,0.3 \
        --neighbour-lexical 0,0.5,0.8 --neighbour-dense 0,0.5,0.8 --passage 0,0.1

Each option takes a comma-separated list (default: the answerer's current value). Prints, for every
combination, token F1, cited evidence and the share of answers whose first quoted sentence holds an
evidence phrase, overall and per language. See rag/answer/extractive.py for what each weight does.
"""
import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.answer import extractive as X  # noqa: E402
from rag.answer.check import SupportScorer  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.embed.embedders import load_embedder  # noqa: E402
from rag.eval.evaluation import EvalConfig, load_qa, run_eval  # noqa: E402
from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.runtime import open_runtime  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


ap = argparse.ArgumentParser()
ap.add_argument("--dense", type=floats, default=[X.DEFAULT_DENSE_WEIGHT])
ap.add_argument("--bonus", type=floats, default=[X.ANSWER_TYPE_BONUS])
ap.add_argument("--neighbour-lexical", type=floats, default=[X.NEIGHBOUR_LEXICAL])
ap.add_argument("--neighbour-dense", type=floats, default=[X.NEIGHBOUR_DENSE])
ap.add_argument("--passage", type=floats, default=[X.PASSAGE_WEIGHT])
a = ap.parse_args()

s = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp()))
emb = load_embedder(s)
rt = open_runtime(s, embedder=emb, build_if_missing=True)
items = [it for it in load_qa(REPO / "eval" / "qa.jsonl") if it.answerable]
sc = SupportScorer.from_store(rt.store)
cache = X.ExtractiveAnswerer(sc, emb)  # shares sentence vectors across the grid
for w, tb, nl, nd, pw in itertools.product(a.dense, a.bonus, a.neighbour_lexical, a.neighbour_dense, a.passage):
    ex = X.ExtractiveAnswerer(sc, emb if w > 0 else None, dense_weight=w, type_bonus=tb, neighbour_lexical=nl,
                              neighbour_dense=nd, passage_weight=pw)
    ex._vectors = cache._vectors
    p = Pipeline(rt.retriever, None, s, scorer=sc, extractor=ex)
    r = run_eval(items, rt.retriever, EvalConfig(k=5, generator="extractive"), pipeline=p)
    ans, pl = r["answer"], r["per_lang"]
    print(f"dense={w} bonus={tb} nb_lex={nl} nb_dense={nd} passage={pw} f1={ans['token_f1']:.3f} "
          f"cited={ans['cited_evidence']:.3f} first={ans['first_sentence_evidence']:.3f} "
          f"nl_first={pl['nl']['answer']['first_sentence_evidence']:.3f} "
          f"en_first={pl['en']['answer']['first_sentence_evidence']:.3f} en_cited={pl['en']['answer']['cited_evidence']:.3f}",
          flush=True)
