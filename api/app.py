"""The HTTP API and the chat page (``rag serve``).

``create_app(settings, runtime=None, llm=None)`` builds the FastAPI app from its parts:

    deps.py         the shared state and what routes depend on (state, pipeline, API key, LLM status)
    gates.py        admission control: LLM slots with a short waiting line, a cap on searches
    answering.py    running one answer: JSON (cancelled when the client leaves) or Server-Sent Events
    errors.py       every error -> status code mapping
    middleware.py   body size and read-time limit, the JSON guard, security headers
    store_health.py /health's view of the store (a database is checked in the background, never waited on)
    models.py       the response models (the schema /docs shows)
    routers/        health, search, ask, documents, admin, page
    server.py       the uvicorn server with header and keep-alive timeouts

Endpoints
    GET  /health                  status, counts, models, Ollama reachability
    GET  /api/search              passages: {"results": [hit, ...]}  (= ``rag search --json``)
    POST /api/ask                 an answer (= ``rag ask --json``), or SSE when streaming
    GET  /api/documents           the indexed articles
    GET  /api/documents/{doc_id}  one article with its full text
    POST /api/reindex             rebuild the index (only with RAG_API_KEY)
    GET  /                        the chat page (api/static)
    GET  /docs, /redoc            OpenAPI pages (served offline by fastapi-offline)
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from rag.config import Settings
from rag.retrieve.batching import batched_runtime
from rag.runtime import Runtime

from .deps import AppState, StatusProbe
from .errors import install_error_handlers
from .hosts import JsonTrustedHostMiddleware
from .gates import LLMGate, SearchLimiter
from . import openai_compat, uploads
from .middleware import CSP, BodyLimitMiddleware, JsonGuardMiddleware, SecurityHeadersMiddleware
from .models import ERROR_RESPONSES
from .routers import admin, ask, documents, health, page, search

__all__ = ["CSP", "create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, runtime: Runtime | None = None, llm: Any = None) -> FastAPI:
    """The API and chat page. Without ``runtime`` the embedding model and the index are loaded
    (and built when missing) at start-up; without ``llm`` the configured backend's adapter is made from settings
    (``rag.llms.registry``)."""
    state = AppState(settings=settings, runtime=runtime, llm=llm,
                     gate=LLMGate(settings.max_concurrent_llm, settings.max_queued),
                     searches=SearchLimiter(settings.max_concurrent_search, settings.search_threads,
                                            settings.search_niceness))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.reindex_lock = asyncio.Lock()
        _stop_builds_on_exit(state)
        if state.llm is None:
            from rag.llms.registry import make_llm

            # (also for RAG_GENERATOR=extractive: a request may still ask for the LLM, /health shows it)
            state.llm = make_llm(settings, "auto" if settings.generator == "extractive" else None)
            state.owns_llm = True
        state.status = StatusProbe(state.llm, timeout=settings.llm_probe_timeout)
        state.status.kick()
        if state.runtime is None:
            from rag.runtime import open_runtime

            state.runtime = await anyio.to_thread.run_sync(lambda: open_runtime(settings, build_if_missing=True))
            state.runtime = batched_runtime(state.runtime, settings)  # concurrent queries share engine calls
        state.follow(state.runtime)  # a new index version on disk is served within RAG_RELOAD_INTERVAL
        state.store_health.start(lambda: state.runtime.store if state.runtime else None)  # a database, for /health
        try:
            yield
        finally:
            state.store_health.stop()
            if state.live is not None:
                state.live.stop()
            state.searches.close()
            if state.owns_llm and hasattr(state.llm, "close"):
                state.llm.close()

    app = FastAPIOffline(
        static_url="/docs-static",
        title="Noord-Korea nieuws RAG",
        description="Questions about news articles, answered with cited passages.",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,  # every route documents the error object it may answer with
    )
    app.state.rag = state
    install_error_handlers(app)

    upload_limit = settings.max_file_bytes + uploads.FORM_OVERHEAD  # one article file, as a form
    # innermost: JSON bodies are JSON (415) and not nested deeper than RAG_MAX_JSON_DEPTH (422), before parsing
    app.add_middleware(JsonGuardMiddleware, max_depth=settings.max_json_depth, exempt=(uploads.UPLOAD_PATH,))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout,
                       larger={("POST", uploads.UPLOAD_PATH): upload_limit},
                       settings={("POST", uploads.UPLOAD_PATH): "an article file of at most "
                                                                f"{settings.max_file_bytes:,} bytes: RAG_MAX_FILE_BYTES"})
    app.add_middleware(SecurityHeadersMiddleware)
    # outermost: a request for another host name (DNS rebinding) gets 400 before anything else runs
    app.add_middleware(JsonTrustedHostMiddleware, allowed_hosts=settings.trusted_hosts())

    for module in (health, search, ask, documents, uploads, admin, openai_compat, page):
        app.include_router(module.router)
    page.mount_static(app)
    return app


def _stop_builds_on_exit(state: AppState) -> None:
    """SIGTERM / SIGINT also tell running index builds to stop (between embedding batches), so the
    server exits promptly during a long upload rebuild; uvicorn's own handler still runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # a test's server in a thread
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            state.stopping.set()
            if callable(previous):
                previous(signum, frame)
            else:  # no handler of uvicorn's: act as before
                signal.signal(signum, previous)
                signal.raise_signal(signum)

        signal.signal(sig, handler)
