"""ASGI middleware: the request-body limit (size and read time) and the security headers."""

from __future__ import annotations

import collections
import json

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# the documentation pages (fastapi-offline's Swagger UI / ReDoc) use inline code: no strict CSP there
CSP_EXEMPT = ("/docs", "/redoc")


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes``: by Content-Length, and by the bytes that
    actually arrive (chunked uploads, lying headers); 408 when the body takes longer than
    ``timeout`` seconds to arrive (a client dripping bytes). Small bodies are buffered and replayed."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 10.0,
                 larger: dict[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.larger = dict(larger or {})  # (method, path) -> its own limit (an article upload)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.larger.get((scope["method"], scope.get("path", "")), self.max_bytes)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                return await self._reject(send, 400, "invalid Content-Length header")
            if n > limit:
                return await self._too_large(send, n, limit)
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
                    return await self._too_large(send, None, limit)
                buffered.append(message)
                if not message.get("more_body", False):
                    break
        if waited.cancelled_caught:
            return await self._reject(send, 408, f"the request body did not arrive within {self.timeout:g} s")
        pending = collections.deque(buffered)

        async def replay() -> Message:
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, n: int | None, limit: int) -> None:
        got = f" ({n} bytes)" if n is not None else ""
        await self._reject(send, 413, f"the request body is too large{got}; at most {limit} bytes are accepted")

    @staticmethod
    async def _reject(send: Send, status: int, detail: str) -> None:
        error = {413: "RequestTooLarge", 408: "RequestTimeout"}.get(status, "BadRequest")
        code = {413: "too_large", 408: "timeout"}.get(status, "bad_request")
        body = json.dumps({"detail": detail, "error": error, "code": code}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
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
