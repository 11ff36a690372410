"""The ONNX backend of the sentence-transformers adapter (``RAG_EMBED_BACKEND=onnx|onnx-int8`` for a
model from the local cache or the hub).

sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, which pins transformers < 4.58
while sentence-transformers 6 needs transformers >= 5: the two cannot be installed together. So the
ONNX backend is done here: the model's transformer is exported once with ``torch.onnx`` into a local
folder (never a hub), optionally quantised to int8 with ONNX Runtime's dynamic quantisation (per
channel), and run by an ONNX Runtime session in place of the torch module. Tokenisation, pooling
and normalisation stay sentence-transformers' own, so the vectors match the torch backend's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rag.errors import EmbeddingModelUnavailable

log = logging.getLogger(__name__)

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
