"""The HTTP API and the chat page (``rag serve``).

``create_app(settings, runtime=None, llm=None)`` builds the FastAPI app. Routes are
thin: they validate the request, call the retriever or the pipeline off the event
loop, and return the same JSON as the CLI's ``--json`` output. Errors of the project
(``rag.errors``) become status codes in one place (``_install_error_handlers``).

Endpoints
    GET  /health                  status, counts, models, Ollama reachability
    GET  /api/search              passages: {"results": [hit, ...]}  (= ``rag search --json``)
    POST /api/ask                 an answer (= ``rag ask --json``), or SSE when streaming
    GET  /api/documents           the indexed articles
    GET  /api/documents/{doc_id}  one article with its full text
    POST /api/reindex             rebuild the index (only with RAG_API_KEY)
    GET  /                        the chat page (api/static)
    GET  /docs                    OpenAPI page
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import inspect
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Iterator, Literal

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.config import Settings
from rag.errors import (
    DocumentNotFound,
    EmbeddingModelMismatch,
    IndexCorrupt,
    IndexNotFound,
    InvalidQuery,
    LLMError,
    LLMModelNotFound,
    LLMStreamBroken,
    LLMTimeout,
    LLMUnavailable,
    RagError,
)
from rag.runtime import Runtime

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MAX_K = 50
MAX_HISTORY_TURNS = 50
STATUS_TTL = 5.0  # seconds an Ollama status is reused by /health
RETRY_AFTER = 5  # seconds, sent with 503 "busy"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# FastAPI's own documentation pages load Swagger UI / ReDoc with inline code: no strict CSP there
CSP_EXEMPT = ("/docs",)

ModeName = Literal["bm25", "dense", "hybrid"]
GeneratorChoice = Literal["auto", "ollama", "extractive"]


# ============================================================================ request models

class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskRequest(BaseModel):
    question: str = Field(description="the question, at most RAG_MAX_QUESTION_CHARS characters")
    k: int = Field(5, ge=1, le=MAX_K, description="number of passages to retrieve")
    mode: ModeName = "hybrid"
    generator: GeneratorChoice = "auto"
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS,
                                description="earlier turns of the conversation, oldest first")
    stream: bool | None = Field(None, description="reply with Server-Sent Events (sources, token..., done | error); "
                                                  "when left out, an 'Accept: text/event-stream' header decides")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the question is empty")
        return v


# ============================================================================ errors

class ServerBusy(Exception):
    """All LLM slots are taken and the waiting line is full."""


_STATUS_FOR: list[tuple[type[BaseException], int]] = [  # first match wins: subclasses first
    (InvalidQuery, 422),
    (DocumentNotFound, 404),
    (IndexNotFound, 503),
    (IndexCorrupt, 503),
    (EmbeddingModelMismatch, 503),
    (LLMUnavailable, 503),
    (LLMModelNotFound, 503),
    (LLMTimeout, 504),
    (LLMStreamBroken, 502),
    (LLMError, 502),
    (RagError, 500),
]


def status_for(exc: BaseException) -> int:
    for cls, status in _STATUS_FOR:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON the client sees for an error: a message, never a traceback."""
    if isinstance(exc, RagError):
        return {"detail": str(exc) or type(exc).__name__, "error": type(exc).__name__}
    return {"detail": "internal server error (see the server log)", "error": "InternalError"}


def _readable(errors: list[dict]) -> tuple[str, list[dict]]:
    parts, items = [], []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
        where = ".".join(loc)
        msg = str(e.get("msg", "invalid value"))
        if e.get("type") == "json_invalid":
            where, msg = "body", "the request body is not valid JSON"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif e.get("type") == "missing":
            msg = "this field is required"
        elif e.get("type") == "model_attributes_type" or (e.get("type") == "dict_type" and not loc):
            where, msg = "body", "the request body must be a JSON object"
        parts.append(f"{where}: {msg}" if where else msg)
        items.append({"field": where, "message": msg})
    return "; ".join(parts) or "invalid request", items


def _install_error_handlers(app: FastAPI) -> None:
    """Every error -> status code mapping lives here."""

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.warning("%s %s -> %d %s: %s", request.method, request.url.path, status, type(exc).__name__, exc)
        return JSONResponse(error_body(exc), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, items = _readable(list(exc.errors()))
        return JSONResponse({"detail": detail, "errors": items, "error": "ValidationError"}, status_code=422)

    @app.exception_handler(ServerBusy)
    async def _busy(request: Request, exc: ServerBusy) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc) or "the server is busy answering other questions; try again in a few seconds",
             "error": "ServerBusy"},
            status_code=503, headers={"Retry-After": str(RETRY_AFTER)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(exc), status_code=500)


# ============================================================================ middleware

class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes``: by Content-Length, and by the bytes that
    actually arrive (chunked uploads, lying headers). Small bodies are buffered and replayed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                return await self._reject(send, 400, "invalid Content-Length header")
            if n > self.max_bytes:
                return await self._too_large(send, n)
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnect before the body was complete
                buffered.append(message)
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._too_large(send, None)
            buffered.append(message)
            if not message.get("more_body", False):
                break
        pending = collections.deque(buffered)

        async def replay() -> Message:
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, n: int | None) -> None:
        got = f" ({n} bytes)" if n is not None else ""
        await self._reject(send, 413, f"the request body is too large{got}; at most {self.max_bytes} bytes are accepted")

    @staticmethod
    async def _reject(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail, "error": "RequestTooLarge" if status == 413 else "BadRequest"}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """A strict Content-Security-Policy on everything but the /docs page (Swagger UI needs an inline script)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        strict = not any(path == p or path.startswith(p + "/") for p in CSP_EXEMPT)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if strict:
                    extra += [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY")]
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ============================================================================ LLM slots and status

class LLMGate:
    """At most ``limit`` asks at once and at most ``max_queued`` waiting; more -> ``ServerBusy``.
    Lives on the event loop (no threads touch it)."""

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


@dataclass
class StatusCache:
    """The LLM's status for /health: reused for ``ttl`` seconds, probed in a worker thread by
    one task at a time, and never awaited for longer than ``timeout``."""

    llm: Any
    ttl: float
    timeout: float
    _value: Any = None
    _at: float = 0.0
    _task: asyncio.Task | None = None

    def _probe(self):
        status = self.llm.status
        try:
            if "refresh" in inspect.signature(status).parameters:
                return status(refresh=True)
        except (TypeError, ValueError):
            pass
        return status()

    async def _run(self):
        value = await anyio.to_thread.run_sync(self._probe, abandon_on_cancel=True)
        self._value, self._at = value, time.monotonic()
        return value

    def kick(self) -> None:
        """Start a probe in the background unless one is running."""
        if self.llm is not None and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())
            self._task.add_done_callback(_ignore_result)

    async def get(self):
        if self.llm is None:
            return None
        if self._value is not None and time.monotonic() - self._at < self.ttl:
            return self._value
        self.kick()
        assert self._task is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._task), self.timeout)
        except asyncio.TimeoutError:
            pass
        except Exception as e:  # a broken adapter: report it, do not fail /health
            log.warning("LLM status probe failed: %s", e)
            return _unreachable(self.llm, f"status check failed: {e}")
        return self._value if self._value is not None else _unreachable(
            self.llm, f"the LLM server did not answer the status check within {self.timeout:g} s")


def _ignore_result(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # mark retrieved: no "exception was never retrieved" noise


def _unreachable(llm: Any, detail: str):
    from rag.llm import LLMStatus

    return LLMStatus(reachable=False, model_available=False, model=getattr(llm, "model", ""), detail=detail)


# ============================================================================ state

@dataclass
class AppState:
    settings: Settings
    runtime: Runtime | None = None
    llm: Any = None
    pipeline: Any = None
    owns_llm: bool = False
    gate: LLMGate = field(default_factory=lambda: LLMGate(1, 0))
    status: StatusCache | None = None
    reindex_lock: asyncio.Lock | None = None
    started_at: float = field(default_factory=time.time)

    def make_pipeline(self, runtime: Runtime):
        from rag.pipeline import Pipeline

        return Pipeline(runtime.retriever, self.llm, self.settings)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.rag
    if state.runtime is None:
        raise IndexNotFound("the index is not loaded yet; try again in a moment")
    return state


def get_pipeline(state: Annotated[AppState, Depends(get_state)]):
    """The pipeline, or None when it cannot be made (the route says so after validating)."""
    if state.pipeline is None:
        try:
            state.pipeline = state.make_pipeline(state.runtime)
        except ImportError as e:
            log.warning("no pipeline: %s", e)
    return state.pipeline


def require_api_key(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> None:
    expected = request.app.state.rag.settings.api_key
    if not expected:
        raise HTTPException(403, "re-indexing over HTTP is off: start the server with RAG_API_KEY set to enable it")
    given = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "a valid API key is required (header 'Authorization: Bearer <key>' or 'X-API-Key')",
                            headers={"WWW-Authenticate": "Bearer"})


StateDep = Annotated[AppState, Depends(get_state)]
PipelineDep = Annotated[Any, Depends(get_pipeline)]
ApiKeyDep = Annotated[None, Depends(require_api_key)]


def check_question(text: str, settings: Settings, what: str = "question") -> str:
    if not text or not text.strip():
        raise InvalidQuery(f"the {what} is empty")
    if len(text) > settings.max_question_chars:
        raise InvalidQuery(f"the {what} is too long ({len(text)} characters; at most {settings.max_question_chars})")
    return text


# ============================================================================ streaming

_DONE = object()


def _next(it: Iterator) -> Any:
    try:
        return next(it)
    except StopIteration:
        return _DONE


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_payload(ev) -> tuple[str, Any]:
    if ev.kind == "sources":
        return "sources", {"sources": [h.to_dict() for h in ev.data]}
    if ev.kind == "token":
        return "token", {"text": ev.data}
    if ev.kind == "done":
        return "done", ev.data.to_dict()
    return str(ev.kind), ev.data


class GuardedStream(StreamingResponse):
    """A streaming response that runs ``on_close`` however it ends (finished, client gone, error),
    even when the body was never iterated."""

    def __init__(self, content: AsyncIterator[str], on_close, **kw) -> None:
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()


async def _may_use_llm(st: "AppState", generator: str) -> bool:
    """Will this ask call the LLM? ``ollama``: yes; ``extractive``: no; ``auto``: when Ollama is
    up and has the model (the status /health shows, cached a few seconds)."""
    if generator == "extractive":
        return False
    if generator == "ollama" or st.status is None:
        return True
    status = await st.status.get()
    return bool(status and status.reachable and status.model_available)


async def stream_answer(gen: Iterator, first: Any, gate: "LLMGate | NoGate") -> GuardedStream:
    """Forward the pipeline's events (``first`` already fetched) as SSE. The generator is advanced
    in worker threads, one ``next()`` at a time; it is closed (which closes the LLM stream) and the
    LLM slot released when the response ends for any reason."""
    closed = False

    async def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            try:
                with anyio.CancelScope(shield=True):  # also when the client went away (cancelled)
                    await anyio.to_thread.run_sync(gen.close)
            except Exception as e:  # closing a broken stream
                log.debug("closing the answer stream: %s", e)
            finally:
                gate.release()

    async def events() -> AsyncIterator[str]:
        ev = first
        try:
            while ev is not _DONE:
                name, data = event_payload(ev)
                yield sse(name, data)
                if name == "done":
                    break
                ev = await anyio.to_thread.run_sync(_next, gen)
        except Exception as exc:  # after the 200 went out, errors travel as an event
            status = status_for(exc)
            if status >= 500 and not isinstance(exc, RagError):
                log.error("answer stream failed", exc_info=exc)
            body = error_body(exc)
            yield sse("error", {"message": body["detail"], "error": body["error"], "status": status})
        finally:
            await close()

    return GuardedStream(events(), close, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ============================================================================ the app

def _install_offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the locally installed swagger-ui-bundle package (a private,
    offline tool must not pull its documentation page from a CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    import swagger_ui_bundle

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} — API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js", swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )


def create_app(settings: Settings, runtime: Runtime | None = None, llm: Any = None) -> FastAPI:
    """The API and chat page. Without ``runtime`` the embedding model and the index are loaded
    (and built when missing) at start-up; without ``llm`` an ``OllamaLLM`` is made from settings."""
    state = AppState(settings=settings, runtime=runtime, llm=llm,
                     gate=LLMGate(settings.max_concurrent_llm, settings.max_queued))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.reindex_lock = asyncio.Lock()
        if state.llm is None:
            from rag.llm import OllamaLLM

            state.llm = OllamaLLM.from_settings(settings)
            state.owns_llm = True
        state.status = StatusCache(state.llm, ttl=STATUS_TTL, timeout=settings.llm_probe_timeout)
        state.status.kick()
        if state.runtime is None:
            from rag.runtime import open_runtime

            state.runtime = await anyio.to_thread.run_sync(
                lambda: open_runtime(settings, build_if_missing=True))
        try:
            state.pipeline = state.make_pipeline(state.runtime)
        except ImportError:  # the pipeline module is missing: search and documents still work
            log.warning("rag.pipeline is not available: /api/ask is off")
        try:
            yield
        finally:
            if state.owns_llm and hasattr(state.llm, "close"):
                state.llm.close()

    app = FastAPI(
        title="Noord-Korea nieuws RAG",
        description="Questions about news articles, answered with cited passages.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served below from the swagger-ui-bundle package: no CDN, works offline
        redoc_url=None,
    )
    app.state.rag = state
    _install_error_handlers(app)

    from api.uploads import UploadBodyLimit, router as uploads_router  # issue 14: article uploads
    app.add_middleware(UploadBodyLimit, max_bytes=settings.max_body_bytes, upload_bytes=settings.max_file_bytes)
    app.add_middleware(SecurityHeadersMiddleware)

    # ------------------------------------------------------------------ health
    @app.get("/health", tags=["status"])
    async def health(request: Request) -> dict[str, Any]:
        """Counts, models, and whether Ollama answers (cached a few seconds; never slow)."""
        st: AppState = request.app.state.rag
        rt = st.runtime
        status = await st.status.get() if st.status is not None else None
        ollama_ok = bool(status and status.reachable and status.model_available)
        embedder = rt.embedder if rt else None
        return {
            "status": "ok" if rt is not None else "starting",
            "documents": len(rt.store.documents) if rt else 0,
            "chunks": len(rt.store.chunks) if rt else 0,
            "embedding_model": embedder.model_id if embedder else None,
            "configured_embedding_model": settings.embed_model,
            "embedding_fallback": embedder.fallback_reason if embedder else None,
            "generator": "ollama" if ollama_ok else "extractive",
            "configured_generator": settings.generator,
            "ollama": {
                "reachable": bool(status and status.reachable),
                "model": status.model if status else settings.llm_model,
                "model_available": bool(status and status.model_available),
                "detail": status.detail if status else "no LLM configured",
                "host": settings.ollama_host,
            },
            "index": {
                "version": rt.store.path.name,
                "created_at": rt.store.manifest.get("created_at"),
            } if rt else None,
            "busy": {"running": st.gate.active, "waiting": st.gate.waiting,
                     "max_concurrent": st.gate.limit, "max_queued": st.gate.max_queued},
        }

    # ------------------------------------------------------------------ search
    @app.get("/api/search", tags=["api"])
    async def search(
        st: StateDep,
        q: Annotated[str, Query(description="what to look for")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
        mode: Annotated[ModeName, Query()] = "hybrid",
    ) -> dict[str, Any]:
        """The passages that best match ``q`` (same object as ``rag search --json``)."""
        check_question(q, settings, "query")
        hits = await anyio.to_thread.run_sync(lambda: st.runtime.retriever.search(q, k=k, mode=mode))
        return {"results": [h.to_dict() for h in hits]}

    # ------------------------------------------------------------------ ask
    @app.post("/api/ask", tags=["api"], responses={
        200: {"description": "the answer (JSON), or Server-Sent Events when streaming",
              "content": {"application/json": {}, "text/event-stream": {}}},
        503: {"description": "busy (Retry-After), index missing or LLM unavailable"},
    })
    async def ask(
        body: AskRequest,
        st: StateDep,
        pipeline: PipelineDep,
        accept: Annotated[str | None, Header()] = None,
    ):
        """Answer a question with cited passages (same object as ``rag ask --json``).

        With ``"stream": true`` (or ``Accept: text/event-stream``) the reply is SSE:
        ``sources`` ({"sources": [...]}) then ``token`` ({"text": ...}) pieces, then ``done``
        (the answer object), or ``error`` ({"message": ...})."""
        check_question(body.question, settings)
        if pipeline is None:
            raise RagError("answering is not available in this installation (rag.pipeline is missing)")
        history = [t.model_dump() for t in body.history] or None
        kwargs = dict(k=body.k, mode=body.mode, generator=body.generator, history=history)
        streaming = body.stream if body.stream is not None else "text/event-stream" in (accept or "")

        # only answers that may call the LLM take one of its slots; extractive ones are cheap
        gate = st.gate if await _may_use_llm(st, body.generator) else NO_GATE
        await gate.acquire()
        if not streaming:
            try:
                answer = await anyio.to_thread.run_sync(lambda: pipeline.ask(body.question, **kwargs))
            finally:
                gate.release()
            return answer.to_dict()

        try:
            gen = pipeline.ask_stream(body.question, **kwargs)
            # the first event decides the status: errors before it get a normal error response
            first = await anyio.to_thread.run_sync(_next, gen)
        except BaseException:
            gate.release()
            raise
        return await stream_answer(gen, first, gate)

    # ------------------------------------------------------------------ documents
    @app.get("/api/documents", tags=["api"])
    async def documents(st: StateDep) -> dict[str, Any]:
        """The indexed articles: id, title, path, metadata and number of chunks."""
        store = st.runtime.store
        docs = [
            {"doc_id": d.doc_id, "title": d.title, "path": d.path, "metadata": d.metadata,
             "chunks": len(store.chunk_indices(d.doc_id)), "chars": len(d.text)}
            for d in store.documents.values()
        ]
        return {"documents": docs, "count": len(docs)}

    @app.get("/api/documents/{doc_id:path}", tags=["api"])
    async def document(doc_id: str, st: StateDep) -> dict[str, Any]:
        """One article: its full text and metadata, and where its chunks are in the text."""
        store = st.runtime.store
        d = store.documents.get(doc_id)
        if d is None:
            raise DocumentNotFound(f"no document with id '{doc_id}'")
        chunks = [store.chunks[i] for i in store.chunk_indices(doc_id)]
        return {
            "doc_id": d.doc_id, "title": d.title, "path": d.path, "metadata": d.metadata, "text": d.text,
            "sha256": d.sha256,
            "chunks": [{"chunk_id": c.chunk_id, "start": c.start, "end": c.end} for c in chunks],
        }

    # ------------------------------------------------------------------ reindex
    @app.post("/api/reindex", tags=["admin"], responses={
        401: {"description": "missing or wrong API key"},
        403: {"description": "re-indexing over HTTP is off (no RAG_API_KEY)"},
        409: {"description": "a re-index is already running"},
    })
    async def reindex(_: ApiKeyDep, request: Request) -> dict[str, Any]:
        """Update the index from the data folder (only changed files are embedded) and swap it in."""
        st: AppState = request.app.state.rag
        if st.runtime is None:
            raise IndexNotFound("the index is not loaded yet; try again in a moment")
        lock = st.reindex_lock or asyncio.Lock()
        if lock.locked():
            raise HTTPException(409, "a re-index is already running; try again when it has finished")
        async with lock:
            old = st.runtime

            def rebuild():
                from rag.runtime import build, open_runtime

                report = build(settings, old.embedder)
                new = open_runtime(settings, embedder=old.embedder)
                try:
                    pipeline = st.make_pipeline(new)
                except ImportError:
                    pipeline = None
                return report, new, pipeline

            report, new, pipeline = await anyio.to_thread.run_sync(rebuild)
            st.runtime, st.pipeline = new, pipeline  # requests already running keep the old ones
        return {"status": "ok", "documents": len(new.store.documents), "chunks": len(new.store.chunks),
                "report": report.to_dict()}

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    from api.openai_compat import router as openai_router  # issue 14: /v1 (OpenAI-compatible)
    app.include_router(openai_router)
    app.include_router(uploads_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_offline_docs(app)
    return app
