"""`rag eval`: the reference Q&A set over retrieval and answers (rag.eval), printed and written as reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from rag.cli.options import DataOpt, GeneratorOpt, IndexOpt, KOpt, ModeOpt, ModelOpt, settings_from
from rag.cli.output import console, out


def eval_command(
    qa: Annotated[Path, typer.Option("--qa", help="reference Q&A set, one JSON object a line")] = Path("eval/qa.jsonl"),
    k: KOpt = None, mode: ModeOpt = None,
    generator: GeneratorOpt = None,
    compare: Annotated[bool, typer.Option("--compare", help="retrieval metrics for bm25, dense and hybrid side by side")] = False,
    judge: Annotated[bool, typer.Option("--judge", help="also let the LLM score faithfulness to the cited passages")] = False,
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="the model that judges (same backend; "
                                                                        "default RAG_LLM_MODEL)")] = None,
    retrieval_only: Annotated[bool, typer.Option("--retrieval-only", help="skip the answers (fast)")] = False,
    replay: Annotated[Optional[Path], typer.Option("--replay", help="a labelled cassette of a real model's answers "
                                                 "(tests/data/llm/*.jsonl): answer with it instead of a live model, "
                                                 "and compare the check's decisions with its labels")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write the JSON report here")] = None,
    html_file: Annotated[Optional[Path], typer.Option("--html", help="write an HTML report here")] = None,
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
) -> None:
    """Measure retrieval and answers on the reference Q&A set (builds the index when missing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rag.errors import LLMUnavailable
    from rag.eval.evaluation import EvalConfig, load_qa, run_eval
    from rag.eval.judge import LLMJudge
    from rag.eval.report import print_summary, render_html
    from rag.runtime import open_runtime

    settings = settings_from(data, index, embed_model, mode=mode, generator=generator)
    k = k or settings.top_k
    items = load_qa(qa)  # a broken set fails before the model is loaded
    with console.status("Loading the embedding model and the index…"):
        rt = open_runtime(settings, update=True, on_stage=lambda m: console.print(f"[dim]{m}[/]"))

    pipeline = llm = judge_llm = None
    if replay is not None:
        return _replay(replay, qa, items, rt, settings, k, out_file)
    if not retrieval_only:
        from rag.answer.pipeline import Pipeline

        if settings.generator != "extractive" or judge:
            from rag.contract import LLM_GENERATORS
            from rag.llms.registry import backend_label, make_llm

            llm = make_llm(settings, settings.generator if settings.generator != "extractive" else "auto")
            st = llm.status()
            if not st.ok:
                if settings.generator in LLM_GENERATORS:
                    raise LLMUnavailable(st.detail)
                console.print(f"[yellow]{backend_label(llm.name)} is not available ({st.detail}): answers come from "
                              f"the extractive generator{'; nothing for the judge to judge' if judge else ''}[/]")
                llm = None
            if judge and judge_model and llm is not None:
                judge_llm = make_llm(settings.model_copy(update={"llm_model": judge_model}), llm.name)
        pipeline = Pipeline(rt.retriever, llm if settings.generator != "extractive" else None, settings)

    config = EvalConfig(k=k, mode=settings.mode, generator=settings.generator, compare=compare,
                        answers=not retrieval_only)
    m = rt.store.manifest
    extra = {"qa_file": str(qa), "settings": {
        "qa_file": str(qa), "data_dir": str(settings.data_dir), "index": str(rt.store.path),
        "embed_model": rt.embedder.model_id, "embed_requested": settings.embed_model,
        "embed_fallback": rt.embedder.fallback_reason is not None,
        "bm25_weight": settings.bm25_weight, "dense_weight": settings.dense_weight,
        "documents": m.get("counts", {}).get("documents"), "chunks": m.get("counts", {}).get("chunks"),
        "llm_model": settings.llm_model if llm is not None else None,
        "llm_backend": llm.name if llm is not None else None,
        "llm_url": getattr(llm, "host", None) if llm is not None else None,
        "judge_model": (judge_model or settings.llm_model) if judge and llm is not None else None,
    }}
    with Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        report = run_eval(items, rt.retriever, config, pipeline=pipeline,
                          judge=LLMJudge(judge_llm or llm) if judge and llm is not None else None,
                          on_progress=on_progress,
                          extra=extra)
    if judge and "judge" not in report:
        report["judge"] = {"n_judged": 0, "faithfulness": None, "score_mean": None,
                           "note": "LLM judge requested, but no LLM answered: nothing judged"}
    print_summary(report, out)
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        console.print(f"JSON report: {out_file}")
    if html_file:
        html_file.parent.mkdir(parents=True, exist_ok=True)
        html_file.write_text(render_html(report), encoding="utf-8")
        console.print(f"HTML report: {html_file}")


def _replay(cassette_path: Path, qa: Path, items, rt, settings, k: int, out_file: Optional[Path]) -> None:
    """``rag eval --replay``: the questions of the cassette asked through the pipeline, the recorded model
    answering; the report is ``rag.eval.verification.score_replay`` plus the usual verification summary."""
    from rag.answer.pipeline import Pipeline
    from rag.eval.verification import score_replay, verification_summary
    from rag.llms.replay import Cassette, ReplayLLM

    cassette = Cassette.load(cassette_path)
    kinds = {it.id: it.kind for it in items}
    llm = ReplayLLM(cassette)
    pipeline = Pipeline(rt.retriever, llm, settings.model_copy(update={"generator": "openai"}))
    answers, rows = {}, []
    with console.status(f"Replaying {len(cassette.records)} recorded answers…"):
        for r in cassette.records:
            r.setdefault("kind", kinds.get(r["id"]))
            if r.get("raw") is None and r.get("abstained_by") != "retrieval":
                continue
            a = pipeline.ask(r["question"], k=k, mode=settings.mode, generator="openai")
            answers[r["id"]] = a
            rows.append(a.to_dict())
    report = {"cassette": str(cassette_path), "model": cassette.model, "qa_file": str(qa),
              "replay": score_replay(cassette.records, answers), "verification": verification_summary(rows),
              "not_in_cassette": llm.missing}
    out.print_json(json.dumps(report, ensure_ascii=False))
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        console.print(f"JSON report: {out_file}")


# --------------------------------------------------------------------------- bench (bench/bench.py, issue #6)
