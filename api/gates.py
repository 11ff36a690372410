"""Admission control: at most so many LLM answers (with a short waiting line) and searches at once;
beyond that a clear 503 (``ServerBusy``). The gates live on the event loop (no threads touch them).
Searches (and /health) also get worker threads of their own (``Threads``, ``SearchLimiter.run``)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import os
import threading
from typing import Any, Callable, TypeVar

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


class SearchLimiter:
    """At most ``limit`` searches admitted at once; one more is refused at once with a clear 503
    (``ServerBusy``). Admitted searches run on ``threads`` worker threads of their own (``pool``, at nice
    value ``niceness``), so they wait for each other there, never in the default thread pool that
    /health's status probe, static files and the other routes use, and under load the event loop gets
    the CPU before them. A search holds its slot until its thread has finished it (a client that leaves
    frees the slot at once only if its search had not started), so ``limit`` really bounds the work."""

    def __init__(self, limit: int, threads: int = 3, niceness: int = 0) -> None:
        self.threads = max(1, int(threads))
        self.limit = max(1, int(limit))
        self.active = 0
        self.niceness = max(0, int(niceness))
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def _lower_priority(self) -> None:
        """Runs in each new search thread: a higher nice value for this thread only (Linux schedules
        threads, and ``setpriority`` on a thread id touches only that thread), so under load the event
        loop that answers /health and takes new requests gets the CPU first. Where it cannot be set
        (another OS, a container without the right), searches run at normal priority."""
        try:
            me = threading.get_native_id()
            if self.niceness > os.getpriority(os.PRIO_PROCESS, me):  # only ever lower the priority
                os.setpriority(os.PRIO_PROCESS, me, self.niceness)
        except (AttributeError, OSError):
            pass

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The search threads: a pool of their own (anyio's worker threads are shared with every other
        ``to_thread`` call, so their priority cannot be lowered for searches alone)."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.threads, "search", initializer=self._lower_priority)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _admit(self) -> None:
        if self.active >= self.limit:
            raise ServerBusy(f"the server is busy ({self.active} searches running, at most {self.limit}); "
                             "try again in a moment")
        self.active += 1

    def _release(self) -> None:
        self.active -= 1

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in one of the search threads, once admitted (``ServerBusy`` when ``limit`` are in)."""
        self._admit()
        loop = asyncio.get_running_loop()
        try:
            job = self.pool.submit(contextvars.copy_context().run, fn)
        except BaseException:
            self._release()
            raise
        # released on the event loop when the thread is done with it, or when it was cancelled unstarted
        # (a loop already closed, at shutdown, has nobody left to count for)
        job.add_done_callback(lambda _: loop.is_closed() or loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(job)
