"""Admission control: at most so many LLM answers (with a short waiting line) and searches at once;
beyond that a clear 503 (``ServerBusy``). The gates live on the event loop (no threads touch them).
Searches (and /health) also get worker threads of their own (``Threads``, ``SearchLimiter.run``)."""

from __future__ import annotations

import asyncio
import collections
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, TypeVar

import anyio

from .errors import ServerBusy

T = TypeVar("T")


class LLMGate:
    """At most ``limit`` asks at once and at most ``max_queued`` waiting; more -> ``ServerBusy``."""

    def __init__(self, limit: int, max_queued: int) -> None:
        self.limit = max(1, int(limit))
        self.max_queued = max(0, int(max_queued))
        self.active = 0
        self.waiting = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def acquire(self) -> None:
        if self.active < self.limit and not self._waiters_alive():
            self.active += 1
            return
        if self.waiting >= self.max_queued:
            raise ServerBusy(f"the server is busy ({self.active} answers running, {self.waiting} waiting); "
                             f"try again in a few seconds")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.waiting += 1
        try:
            await fut  # release() hands its slot over by resolving the future
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # got the slot, but the request went away
                self.release()
            raise
        finally:
            self.waiting -= 1

    def _waiters_alive(self) -> bool:
        return any(not f.done() for f in self._waiters)

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes to the next waiter: active stays the same
                return
        self.active = max(0, self.active - 1)


class NoGate:
    """For answers that use no LLM (extractive): no slot to take."""

    async def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None


NO_GATE = NoGate()


class Threads:
    """A pool of ``threads`` worker threads of its own (an anyio ``CapacityLimiter``, made in the event
    loop on first use): work run on it never waits for a thread of the default pool, nor takes one."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, int(threads))
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        return self._limiter

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


class SearchLimiter(Threads):
    """At most ``limit`` searches admitted at once; one more is refused at once with a clear 503
    (``ServerBusy``). Admitted searches run on their own ``threads`` worker threads (an anyio
    ``CapacityLimiter`` of their own), so they wait for each other there, never in the default thread
    pool that /health's status probe, static files and the other routes use: those never queue behind
    search work. A few threads are enough: the query embeddings of concurrent searches share one engine
    call (``rag.retrieve.batching``), and the rest of a search holds the GIL."""

    def __init__(self, limit: int, threads: int = 4) -> None:
        super().__init__(threads)
        self.limit = max(1, int(limit))
        self.active = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.active >= self.limit:
            raise ServerBusy(f"the server is busy ({self.active} searches running, at most {self.limit}); "
                             "try again in a moment")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in one of the search threads, once admitted (``ServerBusy`` when ``limit`` are in)."""
        async with self.slot():
            return await super().run(fn)
