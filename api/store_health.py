"""What /health says about the store (counts, index version, whether it answers), without ever
waiting on a database.

A store held in this process's memory (the local index) is read at each call: that costs
microseconds. A database (``RAG_STORE=postgres``) is asked in the background instead, at most every
``every`` seconds and one question at a time (so a frozen PostgreSQL holds one of /health's threads,
never more), and /health answers from the last answer, saying how old it is. A question still
unanswered after ``stuck_after`` seconds makes /health say the database does not answer, before the
client-side deadline (``RAG_DB_TIMEOUT``) has even ended it. Only the first /health of a store waits
for its first answer, and briefly (``first_wait``; ``quick_wait`` after an index reload)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from rag.errors import StoreUnavailable

from .gates import Threads

log = logging.getLogger(__name__)


def store_counts(store: Any) -> dict:
    """Counts and index version; a store that does not answer (database down) gives the reason."""
    kind = getattr(store, "kind", "local")
    try:
        return {"documents": len(store.documents), "chunks": len(store.chunks),
                "index": {"version": store.path.name, "created_at": store.manifest.get("created_at")},
                "store": {"kind": kind, "reachable": True, "detail": None}}
    except StoreUnavailable as e:
        return {"index": None, "store": {"kind": kind, "reachable": False, "detail": str(e)}}


def in_memory(store: Any) -> bool:
    return getattr(store, "kind", "local") == "local"


class StoreHealth:
    """The store's state for /health (see the module doc). Lives on the event loop."""

    def __init__(self, threads: Threads, every: float = 1.0, stuck_after: float = 1.0,
                 first_wait: float = 1.0, quick_wait: float = 0.05) -> None:
        self.threads = threads
        self.every = every
        self.stuck_after = stuck_after
        self.first_wait = first_wait
        self.quick_wait = quick_wait
        self._store: Any = None
        self._last: dict | None = None
        self._answered_at = 0.0
        self._task: asyncio.Future | None = None
        self._asked_at = 0.0
        self._watcher: asyncio.Task | None = None

    def start(self, current: Callable[[], Any]) -> None:
        """Ask the served store (``current()``, None before it is loaded) every ``every`` s from now on,
        so /health's answer is never older than that, even when nobody asked for a while."""
        def tick(store: Any) -> None:  # (no reference to a store outlives the call: an old index version's
            if store is not None and not in_memory(store):  # maps must go when it is swapped out)
                self._refresh(store)

        async def watch() -> None:
            while True:
                tick(current())
                await asyncio.sleep(self.every / 2)

        if self._watcher is None:
            self._watcher = asyncio.ensure_future(watch())

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def get(self, store: Any) -> dict:
        """A copy of the last known state of ``store``; ``["store"]["age_s"]``: how old it is."""
        if in_memory(store):
            out = store_counts(store)
            out["store"]["age_s"] = 0.0
            return out
        if store is not self._store:  # the first call, or a new index version's store
            first = self._last is None
            self._refresh(store)
            await asyncio.wait({self._task}, timeout=self.first_wait if first else self.quick_wait)
        else:
            self._refresh(store)
        return self._answer(time.monotonic())

    def _refresh(self, store: Any) -> None:
        """Ask ``store`` unless a question is out already or the last answer is recent."""
        if store is not self._store:
            self._store = store
            self._ask(store)
        elif self._task is None and time.monotonic() - self._answered_at >= self.every:
            self._ask(store)

    def _ask(self, store: Any) -> None:
        if self._task is not None:  # one question at a time; its answer is about the store asked
            return
        self._asked_at = time.monotonic()
        task = asyncio.ensure_future(self.threads.run(store_counts, store))
        self._task = task
        task.add_done_callback(lambda t: self._answered(store, t))

    def _answered(self, store: Any, task: asyncio.Future) -> None:
        self._task = None
        if task.cancelled():
            return
        if task.exception() is not None:  # a bug, not the database: say so, do not fail /health
            log.warning("the store's health check failed: %s", task.exception())
            result = {"index": None, "store": {"kind": getattr(store, "kind", "?"), "reachable": False,
                                               "detail": f"health check failed: {task.exception()}"}}
        else:
            result = task.result()
        if store is self._store or self._last is None:
            self._last, self._answered_at = result, time.monotonic()
        if store is not self._store and self._store is not None:
            self._ask(self._store)  # the current store was not asked yet

    def _answer(self, now: float) -> dict:
        kind = getattr(self._store, "kind", "?")
        if self._last is None:
            out: dict = {"index": None, "store": {"kind": kind, "reachable": False,
                                                  "detail": "the database has not answered yet"}}
        else:
            out = {**self._last, "index": dict(self._last["index"]) if self._last.get("index") else None,
                   "store": dict(self._last["store"])}
        waiting = now - self._asked_at if self._task is not None else 0.0
        if waiting > self.stuck_after:
            out["store"].update(reachable=False, detail=f"the database has not answered for {waiting:.1f} s "
                                                         "(it may be stopped or overloaded)")
        out["store"]["age_s"] = round(now - self._answered_at, 3) if self._last is not None else None
        return out
