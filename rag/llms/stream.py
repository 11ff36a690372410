"""One streamed answer that can be cancelled from any thread (``OllamaLLM.stream_chat`` returns it).

A plain generator cannot be closed while another thread is running it ("generator
already executing"), and closing a socket does not wake a thread blocked reading it.
``ChatStream`` keeps the sockets of its own HTTP client (handed over by httpx's
``trace`` extension) and shuts them down, so a server that waits for a model, or
stalls mid-answer, is left at once when the asker is gone.

The same cut enforces the whole-request deadline (``deadline`` seconds from the first
``next()``): a timer fires at the deadline whether or not a piece arrives, cuts the connection,
and the waiting ``next()`` raises ``on_timeout(progress)`` -- so a server that drips one token
just inside every read timeout cannot stretch the request past its limit.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatStream", "Progress", "deadline_error"]


@dataclass
class Progress:
    """What arrived of an answer so far (for messages about a stall or a break); ``thinking``
    counts the characters of a thinking trace, which are never part of the answer."""

    pieces: int = 0
    chars: int = 0
    thinking: int = 0
    last: float = 0.0  # time.monotonic() of the last byte of answer or trace

    def add(self, text: str = "", thinking: int = 0) -> None:
        """One streamed piece arrived: ``text`` of the answer and ``thinking`` characters of trace."""
        if text:
            self.pieces += 1
            self.chars += len(text)
        self.thinking += max(0, thinking)
        if text or thinking > 0:
            self.last = time.monotonic()

    @property
    def started(self) -> bool:
        """Anything arrived (answer or trace): the server is not merely loading the model."""
        return self.pieces > 0 or self.thinking > 0

    def __str__(self) -> str:
        text = f"{self.pieces} piece{'s' if self.pieces != 1 else ''} ({self.chars} characters)"
        return text + (f" and {self.thinking} characters of thinking" if self.thinking else "")


def deadline_error(server: str, model: str, timeout: float, progress: Progress) -> Exception:
    """The whole request took longer than ``timeout`` (``server`` is e.g. "Ollama at http://...")."""
    from rag.errors import LLMTimeout

    if not progress.started:
        return LLMTimeout(f"{server} did not answer within {timeout:g} s (model {model}). "
                          "Loading a model can take a while the first time; try again or raise RAG_LLM_TIMEOUT.")
    idle = time.monotonic() - progress.last
    if idle >= timeout / 2:
        return LLMTimeout(f"{server} stopped after {progress} of the answer and sent nothing more for {idle:.1f} s "
                          f"(model {model}); the model or the server seems stuck. Try again or raise RAG_LLM_TIMEOUT.")
    return LLMTimeout(f"{server} did not finish the answer within {timeout:g} s (model {model}; {progress} had "
                      "arrived); raise RAG_LLM_TIMEOUT or lower max_answer_tokens.")


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

    def __init__(self, make: Callable[[Callable[[Any], None]], Iterator[str]], progress: Progress | None = None,
                 *, deadline: float | None = None, on_timeout: Callable[[Progress], Exception] | None = None):
        self.progress = progress if progress is not None else Progress()
        self._lock = threading.Lock()
        self._closed = False
        self._running = False
        self._expired = False
        self._deadline = deadline
        self._on_timeout = on_timeout
        self._timer: threading.Timer | None = None
        self._sockets: list[socket.socket] = []
        self._gen = make(self._on_connect)

    def _start_timer(self) -> None:
        if self._deadline is not None and self._timer is None:
            self._timer = threading.Timer(self._deadline, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        """The deadline passed: cut the connection (a waiting ``next()`` raises the timeout)."""
        with self._lock:
            if self._closed:
                return
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _cut(sock)

    def _timeout_error(self) -> Exception:
        if self._on_timeout is not None:
            return self._on_timeout(self.progress)
        return TimeoutError(f"the answer did not finish within {self._deadline:g} s")

    @property
    def expired(self) -> bool:
        return self._expired

    def _on_connect(self, network_stream: Any) -> None:
        sock = network_stream.get_extra_info("socket") if network_stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            closed = self._closed or self._expired
        if closed:  # close() (or the deadline) came while we were connecting
            _cut(sock)

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> str:
        with self._lock:
            if self._closed:
                raise StopIteration
            expired = self._expired
            self._running = not expired
        if expired:
            self.close()
            raise self._timeout_error()
        self._start_timer()
        try:
            return next(self._gen)
        except StopIteration:
            self._stop_timer()
            if self._expired and not self._closed:
                raise self._timeout_error() from None
            raise
        except Exception:
            self._stop_timer()
            if self._closed:  # the read failed because close() cut the connection
                raise StopIteration from None
            if self._expired:  # ... or because the deadline did
                raise self._timeout_error() from None
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
        self._stop_timer()
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
