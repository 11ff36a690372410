"""The options several commands share (typer annotations), and the settings they make."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rag.config import Settings, get_settings
from rag.contract import MAX_K, MIN_K

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="folder of articles (RAG_DATA_DIR)")]
IndexOpt = Annotated[Optional[Path], typer.Option("--index", help="index folder (RAG_INDEX_DIR)")]
ModelOpt = Annotated[Optional[str], typer.Option("--embed-model", help="embedding model (RAG_EMBED_MODEL)")]
KOpt = Annotated[Optional[int], typer.Option("-k", "--k", min=MIN_K, max=MAX_K, help=f"number of passages, {MIN_K} to {MAX_K} (RAG_TOP_K, default 5)")]
ModeOpt = Annotated[Optional[str], typer.Option("--mode", help="bm25 | dense | hybrid (RAG_MODE)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
GeneratorOpt = Annotated[Optional[str], typer.Option("--generator", help="auto | ollama | openai | extractive (RAG_GENERATOR)")]


def settings_from(data: Path | None = None, index: Path | None = None, embed_model: str | None = None, **more) -> Settings:
    return get_settings(data_dir=data, index_dir=index, embed_model=embed_model, **more)
