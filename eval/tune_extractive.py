"""Grid over the extractive answerer's weights on eval/qa.jsonl (answerable questions).

    HF_HUB_OFFLINE=1 .venv/bin/python eval/tune_extractive.py 0.3,0.5,0.7 0,0.1,0.2,0.3

First list: dense weight w; second: the answer-type bonus. Prints token F1, cited evidence and the share
of answers whose first quoted sentence holds an evidence phrase, overall and per language.
"""
import os, sys, tempfile
from pathlib import Path
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.config import Settings
from rag.embedding import load_embedder
from rag.runtime import open_runtime
from rag.evaluation import load_qa, run_eval, EvalConfig
from rag.pipeline import Pipeline
from rag.extractive import ExtractiveAnswerer
from rag.citations import SupportScorer
s = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp()))
emb = load_embedder(s); rt = open_runtime(s, embedder=emb, build_if_missing=True)
items = [it for it in load_qa(REPO / "eval" / "qa.jsonl") if it.answerable]
sc = SupportScorer.from_store(rt.store)
cache = ExtractiveAnswerer(sc, emb, dense_weight=0.5)  # shares sentence vectors across the grid
for w in [float(x) for x in sys.argv[1].split(",")]:
  for ms in (3,):
    for tb in [float(x) for x in sys.argv[2].split(",")]:
        ex = ExtractiveAnswerer(sc, emb if w > 0 else None, dense_weight=w, max_sentences=ms, type_bonus=tb)
        ex._sentence_vector = cache._sentence_vector
        p = Pipeline(rt.retriever, None, s, scorer=sc, extractor=ex)
        r = run_eval(items, rt.retriever, EvalConfig(k=5, generator="extractive"), pipeline=p)
        a = r["answer"]; pl = r["per_lang"]
        print(f"w={w} max={ms} tb={tb} f1={a['token_f1']:.3f} cited={a['cited_evidence']:.3f} first={a['first_sentence_evidence']:.3f} "
              f"nl_first={pl['nl']['answer']['first_sentence_evidence']:.3f} en_first={pl['en']['answer']['first_sentence_evidence']:.3f} "
              f"en_cited={pl['en']['answer']['cited_evidence']:.3f}", flush=True)
