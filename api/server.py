"""The uvicorn server for ``rag serve``, with read timeouts: a client gets ``header_timeout``
seconds to send its request headers (uvicorn itself waits for ever on a fresh connection) and an idle
keep-alive connection is closed after a few seconds; the body's time limit is in the middleware."""

from __future__ import annotations

import json
import os
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

KEEP_ALIVE_SECONDS = 5
GRACEFUL_SHUTDOWN_SECONDS = 5  # after SIGTERM, requests still running get this long, then are cancelled
MAX_HEADER_BYTES = 16 * 1024
SETTINGS_ENV = "_RAG_SERVE_SETTINGS"  # settings for --workers processes (JSON); internal


def timeout_response(seconds: float) -> bytes:
    """The raw 408 sent before a connection is closed for headers that took too long (JSON, as every
    error of the API: ``{"detail", "error", "code"}``)."""
    body = json.dumps({"detail": f"the request headers did not arrive within {seconds:g} s (RAG_HEADER_TIMEOUT)",
                       "error": "RequestTimeout", "code": "timeout"}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)) + body


class HeaderTimeoutProtocol(H11Protocol):
    """Closes a connection whose request headers are not complete within ``header_timeout`` s, with a
    408 first when a request had begun or none was ever made on it (a connection idle between
    keep-alive requests is closed quietly: its client may be sending the next request right now)."""

    header_timeout: float = 10.0
    _header_timer = None
    _served = False

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        if self.conn.their_state in (h11.IDLE,) and not self.transport.is_closing():
            started = bool(self.conn.trailing_data[0])  # bytes of a request whose headers never ended
            if started or not self._served:
                self.transport.write(timeout_response(self.header_timeout))
            self.transport.close()  # (after the write buffer is flushed)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        self._served = True
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def timed_protocol(header_timeout: float) -> type[H11Protocol]:
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})


class WorkerProtocol(HeaderTimeoutProtocol):
    """The protocol of ``--workers`` processes (named by import string; ``worker_app`` sets the timeout)."""


def serve(app: Any, host: str, port: int, header_timeout: float) -> None:
    uvicorn.run(app, host=host, port=port, log_level="info", http=timed_protocol(header_timeout),
                timeout_keep_alive=KEEP_ALIVE_SECONDS, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)


def serve_workers(settings: Any, workers: int) -> None:
    """``rag serve --workers N``: N uvicorn processes on one listening socket. Each loads the app from
    ``settings`` (passed in the environment: the processes are spawned), so each has its own embedding
    engine and the index files mapped read-only (FAISS, vectors and BM25 through mmap: the page cache
    holds them once for all). The engine's threads are shared out: cores // N each, unless set."""
    if settings.embed_threads is None:
        settings = settings.model_copy(update={"embed_threads": max(1, (os.cpu_count() or 1) // workers)})
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run("api.server:worker_app", factory=True, workers=workers, host=settings.host, port=settings.port,
                log_level="info", http="api.server:WorkerProtocol", timeout_keep_alive=KEEP_ALIVE_SECONDS,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)


def worker_app() -> Any:
    """The app of one ``--workers`` process (uvicorn calls it in the spawned process)."""
    from rag.config import Settings

    from .app import create_app

    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    WorkerProtocol.header_timeout = settings.header_timeout
    return create_app(settings)

