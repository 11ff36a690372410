"""The ``rag`` command: index, search, info (and ask, serve, eval, bench beside them).

Settings come from the environment (``RAG_*``, ``OLLAMA_HOST``) with flags on top.
Errors of the project (``RagError``) become one-line messages and exit code 1 here,
in one place (``main``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler

from rag.config import Settings
from rag.cli.output import console, out, print_answer, print_build_report, print_info
from rag.cli.options import DataOpt, GeneratorOpt, IndexOpt, JsonOpt, KOpt, ModeOpt, ModelOpt, settings_from
from rag.contract import AskRequest, SearchRequest, check_length, parse
from rag.errors import ConfigError, RagError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ask questions about your news articles and get answers with cited passages.")

def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)
    for noisy in ("httpx", "sentence_transformers", "transformers", "huggingface_hub", "urllib3", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # transformers reads HF_HUB_DISABLE_PROGRESS_BARS when it is imported: importing it here only for
    # this would cost every command almost a second
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="more logging")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def index(
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="re-embed everything")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Build or update the index (only new or changed files are embedded)."""
    from rag.embed.embedders import load_embedder
    from rag.runtime import build

    settings = settings_from(data, index, embed_model)
    with console.status("Loading the embedding model…"):
        embedder = load_embedder(settings)
    report = build(settings, embedder, rebuild=rebuild, show_progress=not json_out,
                   on_stage=lambda m: console.print(f"[dim]{m}[/]"))
    if json_out:
        out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    print_build_report(report, settings)


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="what to look for")],
    k: KOpt = None, mode: ModeOpt = None, json_out: JsonOpt = False,
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
) -> None:
    """Show the passages that best match QUESTION."""
    from rag.runtime import open_runtime

    settings = settings_from(data, index, embed_model)
    req = parse(SearchRequest, q=question, k=k, mode=mode).with_defaults(settings)  # before the model loads
    from rag.embed.lazy import lazy_embedder

    rt = open_runtime(settings, embedder=lazy_embedder(settings))  # --mode bm25 never loads the model
    hits = rt.retriever.search(req.q, k=req.k, mode=req.mode)
    if json_out:
        print(json.dumps({"results": [h.to_dict() for h in hits]}, ensure_ascii=False))
        return
    if not hits:
        out.print("No matching passages.")
    for h in hits:
        out.print(f"[bold]{h.rank}.[/] [cyan]{h.chunk.title}[/] [dim]({h.chunk.doc_id} {h.chunk.start}-{h.chunk.end}, score {h.score:.4f})[/]")
        out.print("   " + " ".join(h.chunk.text.split())[:600], highlight=False, markup=False)


@app.command()
def info(data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None, json_out: JsonOpt = False) -> None:
    """What is indexed, and with which models."""
    from rag.cli.info import info_report

    settings = settings_from(data, index, embed_model)
    report = info_report(settings)
    if json_out:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print_info(report, settings)


# ----------------------------------------------------------------------------- ask (issue #3)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="your question")],
    k: KOpt = None, mode: ModeOpt = None, generator: GeneratorOpt = None, json_out: JsonOpt = False,
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
) -> None:
    """Answer QUESTION from the articles, citing the passages it comes from."""
    from rag.answer.pipeline import Pipeline
    from rag.runtime import open_runtime

    settings = settings_from(data, index, embed_model)
    # checked before the model is loaded
    req = parse(AskRequest, question=question, k=k, mode=mode, generator=generator).with_defaults(settings)
    check_length(question, settings.max_question_chars)
    k, mode, generator = req.k, req.mode, req.generator
    llm = None
    if generator != "extractive":
        from rag.contract import LLM_GENERATORS
        from rag.llms.registry import make_llm

        llm = make_llm(settings, generator)
        if generator in LLM_GENERATORS:  # fail before loading the embedding model and the index
            from rag.errors import LLMModelNotFound, LLMUnavailable

            st = llm.status()
            if not st.ok:
                llm.close()
                raise (LLMModelNotFound if st.reachable else LLMUnavailable)(st.detail)
    try:
        rt = open_runtime(settings)
        pipeline = Pipeline(rt.retriever, llm, settings)
        if json_out:
            answer = pipeline.ask(question, k=k, mode=mode, generator=generator)
            print(json.dumps(answer.to_dict(), ensure_ascii=False))
            return
        streamed: list[str] = []
        answer = None
        for ev in pipeline.ask_stream(question, k=k, mode=mode, generator=generator):
            if ev.kind == "token":
                streamed.append(ev.data)
                sys.stdout.write(ev.data)
                sys.stdout.flush()
            elif ev.kind == "done":
                answer = ev.data
        sys.stdout.write("\n")
        print_answer(answer, "".join(streamed))
    finally:
        if llm is not None:
            llm.close()




@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="address to listen on (RAG_HOST, default 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535, help="port (RAG_PORT, default 8000)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=64, help="server processes sharing the index read-only (RAG_WORKERS, default 1)")] = None,
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="index files added to, changed in or removed from the data folder as they change (RAG_WATCH)")] = False,
) -> None:
    """Serve the HTTP API and the chat page (brings the index up to date with the data folder first).
    A running server serves every new index version (`rag index`, `rag add`) within a second."""
    from api.app import create_app
    from api.server import serve as run_server

    from rag.runtime import open_runtime
    from rag.index.stores import store_exists

    settings = settings_from(data, index, embed_model, host=host, port=port, workers=workers, watch=watch or None)
    if not store_exists(settings):
        console.print(f"No index in {settings.index_dir}: building it from {settings.data_dir} first…")
    else:
        console.print("Loading the embedding model and the index…")
    rt = open_runtime(settings, update=True, show_progress=True,
                      on_stage=lambda m: console.print(f"[dim]{m}[/]"))
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]Listening on {settings.host}: other machines can reach this server.[/]")
    console.print(f"{len(rt.store.documents)} documents, {len(rt.store.chunks)} chunks. "
                  f"Chat page: http://{settings.host}:{settings.port}/  (Ctrl+C stops)", highlight=False)
    watcher = _data_watcher(settings, rt.embedder) if settings.watch else None  # one for all workers
    if settings.workers > 1:  # each process loads the model and maps the index itself (api/server.py)
        from api.server import serve_workers

        del rt
        return serve_workers(settings, settings.workers)  # each worker follows the index the watcher writes
    from rag.retrieve.batching import batched_runtime  # concurrent query embeddings share engine calls

    web = create_app(settings, runtime=batched_runtime(rt, settings))
    del rt  # only the app holds the first version now: it is freed when a newer one is served
    if watcher is not None:  # serve the watcher's new version at once, not at the next pointer check
        watcher.serve_now = lambda: web.state.rag.live and web.state.rag.live.refresh()
    try:
        run_server(web, settings.host, settings.port, settings.header_timeout)
    finally:
        if watcher is not None:
            watcher.stop()


def _data_watcher(settings: Settings, embedder):
    from rag.runtime import build
    from rag.index.watch import DataWatcher, describe

    def built(report) -> None:
        console.print(f"[dim]{describe(report)}[/]", highlight=False, soft_wrap=True)
        if watcher.serve_now is not None:
            watcher.serve_now()

    watcher = DataWatcher(settings.data_dir, lambda: build(settings, embedder, cancel=watcher.stopping),
                          on_built=built)
    console.print(f"Watching {settings.data_dir}: new, changed and removed files are indexed as they change.",
                  highlight=False)
    return watcher.start()


# --------------------------------------------------------------------------- eval (rag/eval/evaluation.py, rag/eval/report.py)

@app.command("bench")
def bench_cmd(
    quick: Annotated[bool, typer.Option("--quick", help="smaller sizes, sampled embedding, fewer backend rows: about three minutes (see bench/plan.py BenchPlan.make)")] = False,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write all figures and machine info as JSON here")] = None,
    qa: Annotated[Path, typer.Option("--qa", help="reference Q&A set for hit@k")] = Path("eval/qa.jsonl"),
    only: Annotated[Optional[str], typer.Option(
        "--only", help="comma-separated sections: index,retrieval,faiss,api,backends,langchain,postgres,llm")] = None,
    llm_url: Annotated[Optional[str], typer.Option("--llm-url", help="llm section: an OpenAI-compatible server "
                                                   "(llama-server), e.g. http://127.0.0.1:8080/v1")] = None,
    llm_model: Annotated[Optional[str], typer.Option("--llm-model", help="llm section: the model name it answers to")] = None,
    llm_questions: Annotated[int, typer.Option("--llm-questions", min=1, help="llm section: questions to send")] = 12,
    faiss_vectors: Annotated[Optional[int], typer.Option("--faiss-vectors", min=1000, help="vectors for FAISS exact vs HNSW")] = None,
    work_dir: Annotated[Optional[Path], typer.Option("--work-dir", help="where collections and indexes go (default: a temporary folder)")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the work folder")] = False,
    port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535,
                                                help="port of the servers the bench starts (default: a free one)")] = None,
    data: DataOpt = None, index: IndexOpt = None, embed_model: ModelOpt = None,
) -> None:
    """Benchmarks: indexing throughput, retrieval latency as the collection grows, FAISS exact vs HNSW,
    the API under load, embedding backends, and LangChain's FAISS store beside ours."""
    import shutil

    bench = _import_bench()
    BenchPlan, default_work_dir, print_report, run_bench, write_json = (
        bench.BenchPlan, bench.default_work_dir, bench.print_report, bench.run_bench, bench.write_json)

    sections = [s.strip() for s in only.split(",") if s.strip()] if only else None
    known = bench.SECTION_NAMES
    if sections and any(s not in known for s in sections):
        raise ConfigError(f"unknown section in --only: use some of {', '.join(known)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bench never downloads
    settings = settings_from(data, index, embed_model)  # the server's model unless --embed-model (issue 9)
    plan = BenchPlan.make(quick, sections, faiss_vectors)
    plan.port = port
    plan.llm_url, plan.llm_model, plan.llm_questions = llm_url, llm_model or settings.llm_model, llm_questions
    work = work_dir or default_work_dir()
    work.mkdir(parents=True, exist_ok=True)
    console.print(f"[dim]work folder: {work}[/]")
    t0 = __import__("time").perf_counter()

    def stage(msg: str) -> None:
        console.print(f"[dim]{__import__('time').perf_counter() - t0:7.1f}s  {msg}[/]", highlight=False)

    import signal

    def terminated(signum, frame):  # SIGTERM ends the bench like Ctrl-C: servers stopped, folders removed
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminated)
    report: dict = {}
    failure: BaseException | None = None
    try:
        run_bench(plan, settings, qa, work, on_stage=stage, report=report)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - reported below with the figures so far
        failure = e
        report["interrupted"] = ("interrupted" if isinstance(e, KeyboardInterrupt)
                                 else f"failed: {type(e).__name__}: {e}")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not keep and work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if failure is not None:
        console.print(f"[bold red]bench {report['interrupted']}[/]: the figures measured so far follow", highlight=False)
    try:
        print_report(report, out)
    except Exception as e:  # noqa: BLE001 - a partial report lacks sections the tables expect
        if failure is None:
            raise
        console.print(f"[dim](tables stop at a section the bench did not finish: {type(e).__name__}: {e}; "
                      f"measured: {', '.join(k for k in report if k not in ('plan', 'notes'))})[/]", highlight=False)
    if out_file:
        write_json(report, out_file)
        console.print(f"JSON: {out_file}")
    if failure is not None:
        raise typer.Exit(130 if isinstance(failure, KeyboardInterrupt) else 1)


def _import_bench():
    """The bench lives beside the package (bench/ in the checkout), not in it."""
    import importlib

    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "bench" / "bench.py").is_file() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    try:
        return importlib.import_module("bench.bench")
    except ModuleNotFoundError as e:
        raise ConfigError(f"`rag bench` runs from a checkout of the project (bench/ beside rag/): {e}") from None


from rag.cli.db import db_app  # noqa: E402  (issue 13: rag db start/stop/migrate)

app.add_typer(db_app, name="db")

from rag.cli.model import model_app  # noqa: E402  (issue 21: rag model build)

app.add_typer(model_app, name="model")

from rag.cli.mcp_server import mcp_command  # noqa: E402  (issue 14: `rag mcp`)
app.command("mcp")(mcp_command)
from rag.cli.add import add_command  # noqa: E402  (issue 14: `rag add`)
app.command("add")(add_command)
from rag.cli.evaluate import eval_command  # noqa: E402
app.command("eval")(eval_command)


def main() -> None:
    try:
        app()
    except RagError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
