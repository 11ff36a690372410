"""Assemble the parts from settings, at the edges (CLI, API start-up) only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from rag.config import Settings
from rag.embed.embedders import Embedder, load_embedder
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
          on_stage: Callable[[str], None] | None = None) -> BuildReport:
    from rag.index.stores import build_store  # local files or PostgreSQL (RAG_STORE)

    return build_store(settings, embedder, rebuild=rebuild, show_progress=show_progress, on_stage=on_stage)


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
