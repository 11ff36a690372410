"""`rag add FILE|URL`: copy files into the data folder or save web pages, and update the index.

Each source is all or nothing (issue 36 point 6): it is checked and staged (a hidden file in the data
folder), indexed under its name, and linked into the data folder as the commit of the new index
version -- a `kill -9` at any moment leaves it in the data folder and the index, or in neither
(rag/index/local/versions.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rag.cli.options import DataOpt, IndexOpt, ModelOpt, settings_from
from rag.cli.output import console
from rag.errors import RagError
from rag.ingest.add import FETCH_TIMEOUT, AddRefused, clean_staged, stage_source


def add_command(
    sources: Annotated[list[str], typer.Argument(help="files (.md .txt .html .pdf .docx) or web page URLs")],
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1, help="seconds for a web page: fetching it (all of it) and reading it")] = FETCH_TIMEOUT,
) -> None:
    """Add articles: copy files into the data folder or save web pages as Markdown, and update the index."""
    from rag.embed.embedders import load_embedder
    from rag.index.stores import build_store
    from rag.ingest.limits import ParseLimits

    settings = settings_from(data, index, embed_model)
    data_dir = Path(settings.data_dir)
    clean_staged(data_dir)  # what an add that was killed left behind
    embedder, report, failed = None, None, 0
    for src in sources:
        try:
            staged = stage_source(data_dir, src, settings.max_file_bytes, timeout, ParseLimits.from_settings(settings))
        except AddRefused as e:
            failed += 1
            console.print(f"[red]not added:[/] {e}", highlight=False, soft_wrap=True)
            continue
        try:
            with console.status(f"Adding {staged.name} to the index…"):
                embedder = embedder or load_embedder(settings)
                report = build_store(settings, embedder, extra={staged.name: staged.tmp}, publish=staged.commit,
                                     on_stage=lambda m: console.print(m, highlight=False)
                                     if m.startswith("Waiting") else None)  # another build holds the lock: say so
        except RagError as e:
            failed += 1
            console.print(f"[red]not added:[/] {e}", highlight=False, soft_wrap=True)
            continue
        finally:
            staged.discard()
        a = staged.added
        console.print(f"[green]added[/] {a.path}  ({a.title})", highlight=False)
    if report is not None:
        console.print(f"Index updated: {report.documents} documents, {report.chunks} chunks "
                      f"({report.embedded_chunks} chunks embedded).", highlight=False)
    if failed:
        raise typer.Exit(1)
