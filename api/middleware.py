"""ASGI middleware: the request-body limit (size and read time), the JSON guard (content type and
nesting depth, checked before anything parses the body) and the security headers."""

from __future__ import annotations

import collections
import json
import re

import anyio
import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# the documentation pages (fastapi-offline's Swagger UI / ReDoc) use inline code: no strict CSP there
CSP_EXEMPT = ("/docs", "/redoc")


DRAIN_BYTES = 64 * 1024 * 1024  # an over-large body is read (and dropped) up to this much before the 413 ...
DRAIN_SECONDS = 5.0  # ... and for at most this long


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes``: by Content-Length, and by the bytes that
    actually arrive (chunked uploads, lying headers); 408 when the body takes longer than
    ``timeout`` seconds to arrive (a client dripping bytes). Small bodies are buffered and replayed.

    A client that sends its whole body without waiting for an answer (most do; only
    ``Expect: 100-continue`` waits) must still see the 413: a server that answers and closes while
    body bytes are still arriving makes the kernel reset the connection, and the client gets
    ``ConnectionResetError`` instead of the answer. So the rest of an over-large body is read and
    dropped first, up to ``DRAIN_BYTES`` and ``DRAIN_SECONDS`` (then the 413 goes out anyway).
    The answer names the limit: ``{"detail", "error", "code": "too_large", "limit": bytes}``."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 10.0,
                 larger: dict[tuple[str, str], int] | None = None,
                 settings: dict[tuple[str, str], str] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.larger = dict(larger or {})  # (method, path) -> its own limit (an article upload)
        self.settings = dict(settings or {})  # (method, path) -> the setting that sets its limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        route = (scope["method"], scope.get("path", ""))
        limit = self.larger.get(route, self.max_bytes)
        setting = self.settings.get(route, "RAG_MAX_BODY_BYTES")
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                return await self._reject(send, 400, "invalid Content-Length header")
            if n > limit:
                waits = headers.get(b"expect", b"").lower() == b"100-continue"  # nothing sent yet: answer at once
                if not waits and n <= DRAIN_BYTES:
                    await self._drain(receive, 0)
                return await self._too_large(send, n, limit, setting)
        buffered: list[Message] = []
        size = 0
        with anyio.move_on_after(self.timeout) as waited:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # disconnect before the body was complete
                    buffered.append(message)
                    break
                size += len(message.get("body", b""))
                if size > limit:
                    if message.get("more_body", False):
                        await self._drain(receive, size)
                    return await self._too_large(send, None, limit, setting)
                buffered.append(message)
                if not message.get("more_body", False):
                    break
        if waited.cancelled_caught:
            return await self._reject(send, 408, f"the request body did not arrive within {self.timeout:g} s")
        pending = collections.deque(buffered)

        async def replay() -> Message:
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _drain(receive: Receive, size: int) -> None:
        """Read and drop the rest of the body (``size`` bytes of it seen so far), within the bounds."""
        with anyio.move_on_after(DRAIN_SECONDS):
            while size <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    break
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break

    async def _too_large(self, send: Send, n: int | None, limit: int, setting: str) -> None:
        got = f" ({n:,} bytes)" if n is not None else ""
        await self._reject(send, 413, f"the request body is too large{got}; at most {limit:,} bytes are accepted "
                                      f"here ({setting})", limit=limit)

    @staticmethod
    async def _reject(send: Send, status: int, detail: str, **extra: object) -> None:
        error = {413: "RequestTooLarge", 408: "RequestTimeout"}.get(status, "BadRequest")
        code = {413: "too_large", 408: "timeout"}.get(status, "bad_request")
        body = json.dumps({"detail": detail, "error": error, "code": code, **extra}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


# A JSON string, or the rest of the body after an unterminated one. Possessive, so the match never
# backtracks: each byte is looked at once, whatever the input (the old lazy pattern rescanned the rest of
# the body from every quote of an unterminated string: 64 KB of \" pairs took 30 s).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
OFF_LOOP_BYTES = 8 * 1024  # larger bodies are measured in a worker thread, not on the event loop


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, found without parsing it: strings
    are blanked out, then the brackets are counted (linear time, no recursion: about a millisecond
    for 64 KB of any shape)."""
    brackets = np.frombuffer(_JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS), np.uint8)
    if not brackets.size:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return max(0, int(np.cumsum(steps).max()))


async def measure_depth(body: bytes) -> int:
    """``json_depth`` of a request body: in a worker thread when it is large, so the event loop (and
    every other request) never waits on it."""
    if len(body) <= OFF_LOOP_BYTES:
        return json_depth(body)
    return await anyio.to_thread.run_sync(json_depth, body)


def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JsonGuardMiddleware:
    """Every request with a body to a JSON route (all but ``exempt``, the multipart upload) must say
    ``Content-Type: application/json`` (else 415: a page on another site cannot send it without a CORS
    preflight), and its JSON may nest at most ``max_depth`` levels (else 422), checked on the raw bytes
    before FastAPI or the route parse them. The body was already bounded by ``BodyLimitMiddleware``.
    ``/v1/...`` answers in OpenAI's error shape."""

    def __init__(self, app: ASGIApp, max_depth: int = 32, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_depth = max_depth
        self.exempt = set(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") or scope.get("path") in self.exempt:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        buffered: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if (body or ctype) and not is_json_type(ctype):
            return await self._reject(scope, send, 415, "UnsupportedMediaType",
                                      f"the request body must be JSON sent as 'Content-Type: application/json' "
                                      f"(got '{ctype or 'no content type'}')")
        depth = await measure_depth(bytes(body))
        if depth > self.max_depth:
            return await self._reject(scope, send, 422, "ValidationError",
                                      f"the JSON body is nested {depth} levels deep; at most {self.max_depth} "
                                      "are accepted (RAG_MAX_JSON_DEPTH)")
        pending = collections.deque(buffered)

        async def replay() -> Message:
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(scope: Scope, send: Send, status: int, error: str, detail: str) -> None:
        if scope.get("path", "").startswith("/v1/"):  # OpenAI's shape for OpenAI clients
            code = "unsupported_media_type" if status == 415 else "invalid_value"
            payload = {"error": {"message": detail, "type": "invalid_request_error", "param": None, "code": code}}
        else:
            payload = {"detail": detail, "error": error}
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """A strict Content-Security-Policy on everything but the documentation pages (they need inline scripts)."""

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
