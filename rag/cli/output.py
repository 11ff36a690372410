"""What the ``rag`` command prints for people (the ``--json`` forms are printed by the commands)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rag.answer.sources import SOURCES_HEADER, cited_text, source_label
from rag.config import Settings
from rag.text import detect_language

console = Console(stderr=True)
out = Console()


def print_build_report(report, settings: Settings) -> None:
    t = Table(show_header=False, box=None)
    t.add_row("index", str(settings.index_dir))
    t.add_row("documents", str(report.documents))
    t.add_row("chunks", str(report.chunks))
    t.add_row("embedded now", f"{report.embedded_chunks} chunks")
    t.add_row("added / changed / removed / unchanged",
              f"{len(report.added)} / {len(report.changed)} / {len(report.removed)} / {report.unchanged}")
    if report.rebuilt_reason:
        t.add_row("full rebuild", report.rebuilt_reason)
    t.add_row("model", report.model_id + (" (FALLBACK)" if report.fallback_reason else "")
              + (f" — {report.source}" if getattr(report, "source", None) else ""))
    t.add_row("seconds", f"{report.seconds:.1f}")
    t.add_row("status", "written" if report.wrote else "already up to date")
    console.print(t)
    if report.skipped:
        console.print(f"[yellow]Skipped {len(report.skipped)} file(s):[/]")
        for s in report.skipped:
            console.print(f"  {s.path}: {s.reason}")


def print_info(report: dict, settings: Settings) -> None:
    e = report["embedding"]
    out.print(f"[bold]Embedding model[/]: configured {e['configured']}, runs {e['loaded']} "
              f"({e['backend']}, {e['dimension']} dims, chunks up to {e['max_tokens']} tokens) from {e['source']}")
    if e["fallback"]:
        out.print(f"[bold yellow]FALLBACK[/]: {e['fallback_reason']}")
    ix = report["index"]
    if ix is None:
        out.print(f"[bold]Index[/]: none in {settings.index_dir} — run `rag index`")
    else:
        out.print(f"[bold]Index[/]: {ix['path']} built {ix['created_at']}: {ix['documents']} documents, {ix['chunks']} chunks, "
                  f"model {ix['embedding_model']}, FAISS {ix['faiss'].get('type')}, BM25 {ix['bm25']['language']}")
        if not ix["matches_loaded_model"]:
            out.print("[bold red]The index was built with another embedding model: run `rag index --rebuild`[/]")
        for p, d in ix["files"].items():
            out.print(f"  {d}  [dim]{p}[/]", highlight=False)
        for s in ix["skipped"]:
            out.print(f"  [yellow]skipped[/] {s['path']}: {s['reason']}")
    r = report["retrieval"]
    rrf = f", rrf_k {r['rrf_k']}" if "rrf_k" in r else ""
    out.print(f"[bold]Retrieval[/]: {r['mode']}, {r['fusion']} fusion (BM25 weight {r['bm25_weight']}, "
              f"dense weight {r['dense_weight']}{rrf})")
    llm = report["llm"]
    if llm:
        state = ("answers, model available" if llm["model_available"] else
                 "answers, but the model is missing" if llm["reachable"] else "not reachable")
        out.print(f"[bold]LLM[/] ({llm.get('backend', 'ollama')}): {llm['model']} at {llm['host']}: {state}",
                  highlight=False)
        out.print(f"  [dim]{escape(llm['detail'])}[/]", highlight=False)
    groups = {"answers": "Answers", "thresholds": "Thresholds", "limits": "Limits", "timeouts_s": "Timeouts (s)",
              "concurrency": "Concurrency", "server": "Server"}
    for key, label in groups.items():  # the values in force (`rag info --json`: in_force, every setting under "all")
        values = report.get("in_force", {}).get(key, {})
        out.print(f"[bold]{label}[/]: " + ", ".join(f"{k} {_value(v)}" for k, v in values.items()), highlight=False)


def _value(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else escape(str(v))


def print_answer(answer, streamed: str) -> None:
    """After the streamed text: the checked text when the checker changed it, then the cited sources."""
    if answer is None:
        return
    if " ".join(answer.answer.split()) != " ".join(streamed.split()):
        out.print("\n[bold]With checked citations:[/]")
        out.print(answer.answer, highlight=False, markup=False)
    if answer.citations:
        lang = detect_language(answer.question or answer.answer)
        out.print(f"\n[bold]{SOURCES_HEADER.get(lang, SOURCES_HEADER['en']).rstrip(':')}[/]")
    for c in answer.citations:
        note = " [dim](attached by the citation checker)[/]" if c.attached else ""
        out.print(f"[bold][{c.n}][/] [cyan]{escape(source_label(c))}[/] [dim]({escape(c.doc_id)} {c.start}-{c.end})[/]{note}",
                  highlight=False)
        out.print("    " + cited_text(c), highlight=False, markup=False)
    used = answer.generator if answer.generator != "extractive" else "extractive (quotes from the articles)"
    secs = sum(answer.timings.values()) / 1000
    console.print(f"[dim]answered by {used} in {secs:.1f} s[/]" + (f" [dim]({answer.support})[/]" if answer.support != "answered" else ""))
    for w in answer.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
