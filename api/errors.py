"""Every error -> HTTP status mapping, in one place: the project's errors (``rag.errors``), request
validation, a full server (503 with Retry-After) and anything unexpected (500, never a traceback)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rag.ingest.add import AddRefused
from rag.contract import readable
from rag.errors import (
    AdminActionsOff,
    ApiKeyRequired,
    DocumentNotFound,
    EmbeddingModelMismatch,
    IndexBusy,
    BuildCancelled,
    IndexCorrupt,
    IndexNotFound,
    InvalidQuery,
    LLMError,
    LLMModelNotFound,
    LLMStreamBroken,
    LLMTimeout,
    LLMUnavailable,
    RagError,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds, sent with 503 "busy"


class ServerBusy(Exception):
    """All slots (LLM answers or searches) are taken and the waiting line is full."""


class ClientGone(Exception):
    """The client closed the connection before its answer was ready (nothing is sent)."""


_STATUS_FOR: list[tuple[type[BaseException], int]] = [  # first match wins: subclasses first
    (InvalidQuery, 422),
    (ApiKeyRequired, 401),
    (AdminActionsOff, 403),
    (DocumentNotFound, 404),
    (IndexNotFound, 503),
    (StoreUnavailable, 503),
    (IndexBusy, 409),
    (BuildCancelled, 503),
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
    if isinstance(exc, AddRefused):
        return exc.status
    for cls, status in _STATUS_FOR:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON the client sees for an error: a message, never a traceback."""
    if isinstance(exc, RagError):
        body = {"detail": str(exc) or type(exc).__name__, "error": type(exc).__name__}
        if exc.code:
            body["code"] = exc.code  # stable: the page words the message in the reader's language
        return body
    return {"detail": "internal server error (see the server log)", "error": "InternalError"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.warning("%s %s -> %d %s: %s", request.method, request.url.path, status, type(exc).__name__, exc)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, ApiKeyRequired) else None
        return JSONResponse(error_body(exc), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, items = readable(list(exc.errors()))
        return JSONResponse({"detail": detail, "errors": items, "error": "ValidationError"}, status_code=422)

    @app.exception_handler(ServerBusy)
    async def _busy(request: Request, exc: ServerBusy) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc) or "the server is busy answering other questions; try again in a few seconds",
             "error": "ServerBusy"},
            status_code=503, headers={"Retry-After": str(RETRY_AFTER)},
        )

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> JSONResponse:
        return JSONResponse({"detail": "the client closed the connection", "error": "ClientGone"}, status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(exc), status_code=500)
