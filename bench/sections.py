"""The sections of ``rag bench``, in the order they run and print. A section is one module with

* ``run(ctx)``: measures, writes its figures into ``ctx.report`` under its own key and its caveats into
  ``ctx.notes`` (``ctx`` is a ``bench.context.BenchContext``: plan, settings, questions, the loaded model,
  the shipped articles' index, the synthetic collections);
* ``print_section(report, console)``: prints its tables (a rich ``Console``) from the report alone, and
  nothing when its key is missing (a report of other sections, or of a run that was stopped).

A new section is a new module plus one line here; ``--only NAME`` runs it. Add its name to
``bench.plan.DEFAULT_SECTIONS`` when a plain ``rag bench`` should run it too, and any sizes it needs to
``BenchPlan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bench import api, faiss_alone, indexing, langchain_side, llm, retrieval
from bench.plan import DEFAULT_SECTIONS


@dataclass(frozen=True)
class Section:
    name: str
    run: Callable[[Any], None]
    print_section: Callable[[dict[str, Any], Any], None]


def _run_backends(ctx) -> None:
    from bench.backends import embedding_backends

    ctx.report["embedding_backends"] = embedding_backends(ctx.settings, ctx.work, ctx.data_dir, ctx.items, ctx.embedder,
                                                          ctx.plan.backend_repeats, ctx.on_stage, ctx.plan.backends,
                                                          ctx.report["model"]["load_s"])


def _print_backends(report: dict[str, Any], console) -> None:
    from bench.backends import print_backends

    if report.get("embedding_backends"):
        print_backends(report["embedding_backends"], console)


def _run_postgres(ctx) -> None:  # bench/pg.py: pgvector beside FAISS, replicas
    from bench.pg import pg_section

    ctx.report["postgres"] = pg_section(ctx.plan, ctx.settings, ctx.work / "pg", ctx.on_stage, ctx.embedder)


def _print_postgres(report: dict[str, Any], console) -> None:
    from bench.pg import print_pg

    print_pg(report.get("postgres") or {}, lambda s: console.print(s, highlight=False))


SECTIONS: tuple[Section, ...] = (
    Section("index", indexing.run, indexing.print_section),
    Section("retrieval", retrieval.run, retrieval.print_section),
    Section("faiss", faiss_alone.run, faiss_alone.print_section),
    Section("backends", _run_backends, _print_backends),
    Section("langchain", langchain_side.run, langchain_side.print_section),
    Section("api", api.run, api.print_section),
    Section("postgres", _run_postgres, _print_postgres),
    Section("llm", llm.run_section, llm.print_section),  # only when asked for: rag bench --only llm [--llm-url]
)
# what --only accepts: the default sections in the plan's order, then the ones run only when asked for
SECTION_NAMES: tuple[str, ...] = DEFAULT_SECTIONS + tuple(s.name for s in SECTIONS if s.name not in DEFAULT_SECTIONS)
