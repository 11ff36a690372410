"""The app's shared state and the dependencies routes ask for: state, pipeline, API key, LLM status."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, HTTPException, Request, Response

from rag.config import Settings
from rag.errors import AdminActionsOff, ApiKeyRequired, IndexNotFound
from rag.runtime import Runtime

from .gates import LLMGate, SearchLimiter, Threads
from .store_health import StoreHealth

log = logging.getLogger(__name__)


class StatusProbe:
    """The LLM's status for /health and for ``auto`` asks, never awaited longer than ``timeout``.
    One probe runs at a time (in a worker thread); the adapter itself caches the answer."""

    def __init__(self, llm: Any, timeout: float) -> None:
        self.llm = llm
        self.timeout = timeout
        self._task: asyncio.Task | None = None

    def kick(self) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(anyio.to_thread.run_sync(self.llm.status, abandon_on_cancel=True))
            self._task.add_done_callback(_ignore_result)
        return self._task

    async def get(self):
        if self.llm is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(self.kick()), self.timeout)
        except asyncio.TimeoutError:
            return _unreachable(self.llm, f"the LLM server did not answer the status check within {self.timeout:g} s")
        except Exception as e:  # a broken adapter: report it, do not fail /health
            log.warning("LLM status probe failed: %s", e)
            return _unreachable(self.llm, f"status check failed: {e}")


def _ignore_result(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # mark retrieved: no "exception was never retrieved" noise


def _unreachable(llm: Any, detail: str):
    from rag.llms.base import LLMStatus

    return LLMStatus(reachable=False, model_available=False, model=getattr(llm, "model", ""), detail=detail)


@dataclass
class AppState:
    settings: Settings
    runtime: Runtime | None = None
    llm: Any = None
    pipeline: Any = None
    owns_llm: bool = False
    gate: LLMGate = field(default_factory=lambda: LLMGate(1, 0))
    searches: SearchLimiter = field(default_factory=lambda: SearchLimiter(8))
    # /health's own worker threads: it never waits for a thread of the default pool that answers share
    health_threads: Threads = field(default_factory=lambda: Threads(2))
    store_health: StoreHealth | None = None  # /health's view of the store, never waiting on a database (shared)
    status: StatusProbe | None = None
    reindex_lock: asyncio.Lock | None = None
    started_at: float = field(default_factory=time.time)
    stopping: threading.Event = field(default_factory=threading.Event)  # set by SIGTERM: builds stop between batches
    live: Any = None  # rag.index.local.live.LiveIndex: the served index version, following the index on disk
    snapshot: Any = None  # in a request's view: the one version it uses from start to end

    def __post_init__(self) -> None:
        if self.store_health is None:  # (a request's view, ``now()``, shares the server's)
            self.store_health = StoreHealth(self.health_threads)

    def now(self) -> "AppState":
        """This state as one request sees it: runtime and pipeline of the version served right now,
        fixed for the whole request (a reload meanwhile does not change them)."""
        if self.live is None:
            return self
        snap = self.live.current()
        return dataclasses.replace(self, runtime=snap.runtime, pipeline=snap.pipeline, snapshot=snap)

    def follow(self, runtime: Runtime) -> None:
        """Serve ``runtime`` and follow the index from now on (at start-up)."""
        from rag.runtime import live_runtime

        def on_swap(snap) -> None:
            self.runtime, self.pipeline = snap.runtime, snap.pipeline

        self.live = live_runtime(self.settings, runtime, self.make_pipeline, on_swap)
        on_swap(self.live.current())
        self.live.start()

    def make_pipeline(self, runtime: Runtime):
        from rag.answer.pipeline import Pipeline

        return Pipeline(runtime.retriever, self.llm, self.settings)

    def admin_lock(self) -> asyncio.Lock:
        """One re-index, upload or removal at a time."""
        if self.reindex_lock is None:
            self.reindex_lock = asyncio.Lock()
        return self.reindex_lock

    def admin_lock_or_409(self) -> asyncio.Lock:
        """The admin lock when it is free; a change that would have to wait for it gets 409 at once."""
        lock = self.admin_lock()
        if lock.locked():
            raise HTTPException(409, "another change to the archive (a re-index, upload or removal) is running; "
                                     "try again when it has finished")
        return lock

    def rebuild(self):
        """Bring the index up to date with the data folder and load it (in a worker thread). It embeds with
        the server's embedder, which is safe to share with the searches running meanwhile.
        Returns (build report, runtime, pipeline); the caller swaps them in."""
        from rag.runtime import build, open_runtime

        old = self.runtime
        report = build(self.settings, old.embedder, cancel=self.stopping.is_set)  # stops at SIGTERM, index untouched
        if self.live is not None and self.live.follows:  # the new version, loaded by the follower's rules
            snap = self.live.refresh(raise_errors=True)
        else:
            new = open_runtime(self.settings, embedder=old.embedder)
            if self.live is None:
                return report, new, self.make_pipeline(new)
            snap = self.live.install(new)
        return report, snap.runtime, snap.pipeline


def get_state(request: Request, response: Response) -> AppState:
    state: AppState = request.app.state.rag.now()
    if state.runtime is None:
        raise IndexNotFound("the index is not loaded yet; try again in a moment")
    if state.snapshot is not None and state.snapshot.version:
        response.headers["X-Index-Version"] = state.snapshot.version  # which version answered
    return state


def get_pipeline(state: Annotated[AppState, Depends(get_state)]):
    if state.pipeline is None:
        state.pipeline = state.make_pipeline(state.runtime)
    return state.pipeline


def require_api_key(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> None:
    expected = request.app.state.rag.settings.api_key
    if not expected:
        raise AdminActionsOff("admin actions over HTTP (re-indexing, adding and removing articles) are off: start "
                                 "the server with RAG_API_KEY set to enable them (or use `rag index` / `rag add`)")
    given = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiKeyRequired("a valid API key is required (header 'Authorization: Bearer <key>' or 'X-API-Key')")


StateDep = Annotated[AppState, Depends(get_state)]
PipelineDep = Annotated[Any, Depends(get_pipeline)]
ApiKeyDep = Annotated[None, Depends(require_api_key)]
