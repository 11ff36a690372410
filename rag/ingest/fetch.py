"""Fetching a web page for ``rag add URL`` with one deadline for all of it (issue 37 point 6).

httpx's timeouts bound connecting and each read, so a server that sends one byte just inside every
read timeout never ends a plain fetch. ``Deadline`` cuts the fetch's sockets when its time is up
(the sockets come from httpx's ``trace`` extension; shutting one down wakes a read blocked on it),
so connecting, redirects and the whole body end at ``timeout`` whatever the server does.
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["Deadline", "FetchError", "fetch_page"]

USER_AGENT = "nk-rag/0.1 (+local article archive)"
HTML_TYPES = ("text/html", "application/xhtml+xml")


class FetchError(Exception):
    """The page cannot be fetched; ``status`` is the HTTP status to report it with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Deadline:
    """Cuts the sockets of one fetch at its deadline: httpx's timeouts bound each read, so a server
    that sends a byte just inside every read timeout would otherwise never end. The sockets come
    from httpx's ``trace`` extension; shutting one down wakes a read blocked on it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.passed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def left(self) -> float:
        return self.end - time.monotonic()

    def hooks(self) -> dict[str, list]:
        def trace(event: str, info: dict) -> None:
            if event.startswith("connection.connect_") and event.endswith(".complete"):
                stream = info.get("return_value")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    with self._lock:
                        self._sockets.append(sock)
                        passed = self.passed
                    if passed:
                        _shutdown(sock)

        def add_trace(request) -> None:
            request.extensions["trace"] = trace

        return {"request": [add_trace]}

    def _cut(self) -> None:
        with self._lock:
            self.passed = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def __enter__(self) -> "Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def late(url: str, seconds: float) -> FetchError:
    return FetchError(f"{url}: no answer within {seconds:g} s (the whole page must arrive in that time; --timeout)", 504)


def fetch_page(url: str, max_bytes: int, timeout: float, deadline: Deadline | None = None) -> tuple[bytes, str]:
    """(the page's bytes, the final URL after redirects), or ``FetchError`` with a clear reason.
    All of it -- connecting, redirects, the whole body -- within ``timeout`` seconds (or ``deadline``)."""
    import httpx

    if deadline is None:
        with Deadline(timeout) as own:
            return fetch_page(url, max_bytes, timeout, own)
    too_late = late(url, deadline.seconds)
    try:
        with httpx.Client(timeout=max(0.1, min(timeout, deadline.left())), follow_redirects=True,
                          headers={"User-Agent": USER_AGENT}, event_hooks=deadline.hooks()) as client:
            with client.stream("GET", url) as r:
                if r.status_code >= 400:
                    raise FetchError(f"{url}: the server answered {r.status_code} {r.reason_phrase}".rstrip(), 502)
                ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype and ctype not in HTML_TYPES:
                    raise FetchError(f"{url} is not a web page (content type '{ctype}'); "
                                     "download it and add the file instead", 415)
                body = bytearray()
                for part in r.iter_bytes():
                    body += part
                    if len(body) > max_bytes:
                        raise FetchError(f"{url}: the page is larger than {max_bytes:,} bytes", 413)
                    if deadline.left() <= 0:
                        raise too_late
                return bytes(body), str(r.url)
    except httpx.TimeoutException:
        raise (too_late if deadline.passed or deadline.left() <= 0 else late(url, timeout)) from None
    except httpx.HTTPError as e:
        if deadline.passed:
            raise too_late from None
        raise FetchError(f"{url}: cannot fetch the page ({type(e).__name__}: {e})", 502) from None
