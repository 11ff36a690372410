"""/api/search with and without micro-batched query embeddings (docs/throughput.md): one
``rag serve`` per configuration on the shipped articles, 1, 8 and 32 clients of unique questions, and the
p99 of /health under 32. Any server setting can be swept the same way, e.g. the search threads:
``python -m bench.micro_batching RAG_SEARCH_THREADS=4,RAG_SEARCH_NICENESS=0 RAG_SEARCH_THREADS=3``.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.micro_batching [--seconds 6] [CONFIG ...]

A CONFIG is comma-separated environment for the server, e.g. ``RAG_EMBED_MICRO_BATCH=on,RAG_EMBED_CALL_THREADS=2``;
without any, the five rows of docs/throughput.md. The index is built once, in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROWS = ["RAG_EMBED_MICRO_BATCH=on", "RAG_EMBED_MICRO_BATCH=on,RAG_EMBED_BATCH_WINDOW_MS=0",
        "RAG_EMBED_MICRO_BATCH=on,RAG_EMBED_CALL_THREADS=2", "RAG_EMBED_MICRO_BATCH=off",
        "RAG_EMBED_MICRO_BATCH=off,RAG_EMBED_CALL_THREADS=2"]


def main() -> None:
    from bench.load import client_load as _load
    from bench.server import start_server
    from bench.measure import _build
    from rag.config import Settings
    from rag.embed.embedders import load_embedder
    from rag.eval.qaset import load_qa
    from rag.index.local.indexer import IndexParams

    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="*", default=ROWS)
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    questions = [q.question for q in load_qa(REPO / "eval" / "qa.jsonl")]
    data = REPO / "data" / "articles"
    with tempfile.TemporaryDirectory(prefix="rag-microbatch-") as tmp:
        work, index = Path(tmp), Path(tmp) / "index"
        settings = Settings(data_dir=data, index_dir=index)
        _build(data, index, load_embedder(settings), IndexParams.from_settings(settings))
        for config in args.configs:
            env = dict(kv.split("=", 1) for kv in config.split(",") if kv)
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                server = start_server(index, data, work, Settings(data_dir=data, index_dir=index))
                try:
                    asyncio.run(_load(server.base, "/api/search", 1, 1.0, 50, questions))  # warm-up
                    runs = [asyncio.run(_load(server.base, "/api/search", c, args.seconds, 5000, questions))
                            for c in (1, 8, 32)]
                    rates = [r["rps"] for r in runs]
                finally:
                    server.stop()
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
            print(f"{config or 'defaults'}: 1 client {rates[0]} req/s, 8 clients {rates[1]} req/s, 32 clients {rates[2]} req/s, "
                  f"/health p99 at 32 clients {runs[2]['health_ms']['p99']} ms", flush=True)


if __name__ == "__main__":
    main()
