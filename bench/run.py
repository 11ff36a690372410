"""``run_bench``: the whole ``rag bench`` run. The machine's description and the plan first, then the model
and the shipped articles' index (``BenchContext``), then each section of the plan in the order of
``bench.sections.SECTIONS``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from bench.context import BenchContext
from bench.machine import machine_info, peak_rss_mb
from bench.plan import BenchPlan
from bench.sections import SECTIONS


def run_bench(plan: BenchPlan, settings, qa_path: Path, work: Path,
              on_stage: Callable[[str], None] = lambda m: None, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """All sections of ``plan``; figures go into ``report`` as they are measured (so a caller that is
    interrupted still holds what was measured so far)."""
    t_start = time.perf_counter()
    notes: list[str] = []
    report = {} if report is None else report
    report.update({"bench_version": 1, "quick": plan.quick, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "machine": machine_info(), "plan": {k: v for k, v in plan.__dict__.items()}, "notes": notes})
    ctx = BenchContext.open(plan, settings, qa_path, work, on_stage, report, notes)
    for section in SECTIONS:
        if section.name in plan.sections:
            section.run(ctx)
    report["bench_peak_rss_mb"] = peak_rss_mb()
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    return report
