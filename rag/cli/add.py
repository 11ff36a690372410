"""`rag add FILE|URL`: copy files into the data folder or save web pages, then update the index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rag.cli.options import DataOpt, IndexOpt, ModelOpt, settings_from
from rag.cli.output import console
from rag.ingest.add import FETCH_TIMEOUT, AddRefused, add_source

def add_command(
    sources: Annotated[list[str], typer.Argument(help="files (.md .txt .html .pdf .docx) or web page URLs")],
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="seconds to wait for a web page")] = FETCH_TIMEOUT,
) -> None:
    """Add articles: copy files into the data folder or save web pages as Markdown, then update the index."""
    from rag.embed.embedders import load_embedder
    from rag.index.stores import build_store
    from rag.ingest.limits import ParseLimits

    settings = settings_from(data, index, embed_model)
    data_dir = Path(settings.data_dir)
    added, failed = [], 0
    for src in sources:
        try:
            a = add_source(data_dir, src, settings.max_file_bytes, timeout, ParseLimits.from_settings(settings))
        except AddRefused as e:
            failed += 1
            console.print(f"[red]not added:[/] {e}", highlight=False, soft_wrap=True)
            continue
        added.append(a)
        console.print(f"[green]added[/] {a.path}  ({a.title})", highlight=False)
    if added:
        with console.status("Updating the index…"):
            embedder = load_embedder(settings)
            report = build_store(settings, embedder, on_stage=lambda m: console.print(m, highlight=False)
                                 if m.startswith("Waiting") else None)  # another build holds the lock: say so
        console.print(f"Index updated: {report.documents} documents, {report.chunks} chunks "
                      f"({report.embedded_chunks} chunks embedded).", highlight=False)
    if failed:
        raise typer.Exit(1)
