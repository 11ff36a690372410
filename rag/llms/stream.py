"""One streamed answer that can be cancelled from any thread (``OllamaLLM.stream_chat`` returns it).

A plain generator cannot be closed while another thread is running it ("generator
already executing"), and closing a socket does not wake a thread blocked reading it.
``ChatStream`` keeps the sockets of its own HTTP client (handed over by httpx's
``trace`` extension) and shuts them down, so a server that waits for a model, or
stalls mid-answer, is left at once when the asker is gone.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatStream", "Progress"]


@dataclass
class Progress:
    """What arrived of an answer so far (for messages about a stall or a break)."""

    pieces: int = 0
    chars: int = 0

    def __str__(self) -> str:
        return f"{self.pieces} piece{'s' if self.pieces != 1 else ''} ({self.chars} characters)"


class ChatStream(Iterator[str]):
    """The pieces of one streamed answer.

    ``make(on_connect)`` returns the generator of pieces; it calls ``on_connect(network_stream)``
    for every connection it opens (the request is only sent on the first ``next()``).

    ``close()`` may be called from any thread at any time. When no ``next()`` is running it
    closes the generator -- and with it the HTTP response -- at once. When another thread is
    inside ``next()`` (waiting for the first byte, or for the next piece) it shuts the socket
    down: that read fails at once, that ``next()`` raises ``StopIteration``, and the server
    sees the connection drop.
    """

    def __init__(self, make: Callable[[Callable[[Any], None]], Iterator[str]], progress: Progress | None = None):
        self.progress = progress if progress is not None else Progress()
        self._lock = threading.Lock()
        self._closed = False
        self._running = False
        self._sockets: list[socket.socket] = []
        self._gen = make(self._on_connect)

    def _on_connect(self, network_stream: Any) -> None:
        sock = network_stream.get_extra_info("socket") if network_stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            closed = self._closed
        if closed:  # close() came while we were connecting
            _cut(sock)

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> str:
        with self._lock:
            if self._closed:
                raise StopIteration
            self._running = True
        try:
            return next(self._gen)
        except Exception:
            if self._closed:  # the read failed because close() cut the connection
                raise StopIteration from None
            raise
        finally:
            with self._lock:
                self._running = False
                closed = self._closed
            if closed:
                self._gen.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            running = self._running
            sockets = list(self._sockets)
        if running:  # another thread is inside next(): wake it by cutting the connection
            for sock in sockets:
                _cut(sock)
        else:
            self._gen.close()

    def __enter__(self) -> "ChatStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _cut(sock: socket.socket) -> None:
    """Shut a socket down; unlike ``close()`` this also wakes a thread blocked reading from it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
