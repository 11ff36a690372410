"""Assemble the parts from settings, at the edges (CLI, API start-up) only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from rag.config import Settings
from rag.embed.base import Embedder
from rag.embed.embedders import load_embedder
from rag.retrieve.retriever import FusionParams, Retriever
from rag.index.local.indexer import BuildReport
from rag.index.local.store import IndexStore

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    embedder: Embedder
    store: IndexStore
    retriever: Retriever


def build(settings: Settings, embedder: Embedder, *, rebuild: bool = False, show_progress: bool = False,
          on_stage: Callable[[str], None] | None = None, cancel: Callable[[], bool] | None = None,
          retry_failed: bool = False) -> BuildReport:
    from rag.index.stores import build_store  # local files or PostgreSQL (RAG_STORE)

    return build_store(settings, embedder, rebuild=rebuild, show_progress=show_progress, on_stage=on_stage,
                       cancel=cancel, retry_failed=retry_failed)


def live_runtime(settings: Settings, runtime: Runtime, make_pipeline: Callable, on_swap: Callable | None = None):
    """A ``LiveIndex`` serving ``runtime`` that follows the local index on disk (rag/index/local/live.py);
    the PostgreSQL store follows its database by itself, so it is only swapped by ``install``."""
    from rag.index.local.live import LiveIndex, read_pointer

    local = settings.store == "local"
    embedder = runtime.embedder  # not the runtime itself: the first version must be freeable
    return LiveIndex(runtime, load=lambda: open_runtime(settings, embedder=embedder), make_pipeline=make_pipeline,
                     pointer=(lambda: read_pointer(settings.index_dir)) if local else None,
                     interval=settings.reload_interval, on_swap=on_swap)


def open_runtime(settings: Settings, *, embedder: Embedder | None = None, build_if_missing: bool = False,
                 update: bool = False, show_progress: bool = False,
                 on_stage: Callable[[str], None] | None = None) -> Runtime:
    """Load the embedder and the index.

    ``build_if_missing``: build the index first when there is none. ``update``: bring it up to date
    with the data folder first (incremental: only new or changed files are embedded; nothing is
    written when it is current).
    """
    embedder = embedder or load_embedder(settings)
    from rag.index.stores import fusion_settings, open_store, store_exists

    if update or (build_if_missing and not store_exists(settings)):
        log.info("bringing the index in %s up to date with %s", settings.index_dir, settings.data_dir)
        build(settings, embedder, show_progress=show_progress, on_stage=on_stage)
    store = open_store(settings, embedder)
    fusion = FusionParams.from_settings(settings.model_copy(update=fusion_settings(settings)))
    return Runtime(settings, embedder, store, Retriever(store, embedder, fusion))
