"""The report of ``rag bench``: its tables on a console (``print_report``: the machine and the model, then
each section's tables, then the notes) and its JSON (``write_json``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from bench.sections import SECTIONS


def print_report(report: dict[str, Any], console) -> None:
    from rich.console import Console

    if not console.is_terminal or console.width < 150:
        console = Console(file=console.file, width=170, force_terminal=console.is_terminal)
    m = report["machine"]
    console.print(f"[bold]rag bench[/] {'--quick ' if report['quick'] else ''}— {m.get('cpu')}, "
                  f"{m.get('physical_cores')} cores / {m.get('logical_cores')} threads, {m.get('ram_gb')} GB RAM, "
                  f"Python {m.get('python')}, torch {m.get('torch')}, faiss {m.get('faiss-cpu')}, "
                  f"load average at start {m.get('load_average_at_start')}", highlight=False)
    md = report.get("model", {})
    console.print(f"model {md.get('model_id')} ({md.get('backend')}, {md.get('dimension')} dims), loaded in "
                  f"{md.get('load_s')} s", highlight=False)

    for section in SECTIONS:
        section.print_section(report, console)
    for n in report.get("notes", []):
        console.print(f"[dim]note:[/] {n}", highlight=False)
    console.print(f"bench took {report.get('seconds')} s; peak RSS of the bench process {report.get('bench_peak_rss_mb')} MB",
                  highlight=False)


def default_work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="rag-bench-"))


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
