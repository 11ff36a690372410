"""``rag eval`` with passages (the index) embedded by one ONNX variant of the packaged e5 and queries by
another (docs/throughput.md, "Why indexing is hard"): would int8 passages, which index fastest, keep
the eval's figures if queries stay 4-bit (or the other way round)?

    HF_HUB_OFFLINE=1 .venv/bin/python eval/mixed_engines.py --passages onnx-int8 --queries onnx-q4 \\
        -- --compare --generator extractive -k 5 --index /tmp/ix-mixed

Everything after ``--`` goes to ``rag eval``. Use a fresh ``--index`` folder per pair: the index is built
with the passage engine but its manifest names the query engine (this is a measurement, not a backend).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", required=True, choices=["onnx", "onnx-int8", "onnx-q4"])
    ap.add_argument("--queries", required=True, choices=["onnx", "onnx-int8", "onnx-q4"])
    ap.add_argument("eval_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    rest = args.eval_args[1:] if args.eval_args[:1] == ["--"] else args.eval_args

    from rag.embed import onnx

    real_init = onnx.OnnxE5Embedder.__init__
    inner = {"on": False}

    def init(self, folder, **kw):  # the configured engine (RAG_EMBED_BACKEND=queries) borrows the other's passages
        real_init(self, folder, **kw)
        if inner["on"]:
            return
        inner["on"] = True
        try:
            other = onnx.OnnxE5Embedder(folder, **{**kw, "backend": args.passages})
        finally:
            inner["on"] = False
        self.embed_passages = other.embed_passages

    onnx.OnnxE5Embedder.__init__ = init
    os.environ["RAG_EMBED_BACKEND"] = args.queries
    from rag.cli.main import app

    sys.argv = ["rag", "eval", *rest]
    app()


if __name__ == "__main__":
    main()
