"""The uvicorn server for ``rag serve``, with read timeouts: a client gets ``header_timeout``
seconds to send its request headers (uvicorn itself waits for ever on a fresh connection) and an idle
keep-alive connection is closed after a few seconds; the body's time limit is in the middleware."""

from __future__ import annotations

from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

KEEP_ALIVE_SECONDS = 5
MAX_HEADER_BYTES = 16 * 1024


def timed_protocol(header_timeout: float) -> type[H11Protocol]:
    class HeaderTimeoutProtocol(H11Protocol):
        """Closes a connection whose request headers are not complete within ``header_timeout`` s."""

        _header_timer = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            if self.conn.their_state in (h11.IDLE,) and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def serve(app: Any, host: str, port: int, header_timeout: float) -> None:
    uvicorn.run(app, host=host, port=port, log_level="info", http=timed_protocol(header_timeout),
                timeout_keep_alive=KEEP_ALIVE_SECONDS, h11_max_incomplete_event_size=MAX_HEADER_BYTES)
