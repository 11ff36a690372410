"""ASGI middleware: the request-body limit (size and read time), the JSON guard (content type and
nesting depth, checked before anything parses the body) and the security headers."""

from __future__ import annotations

import collections
import itertools
import json
import re

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


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, found without parsing it: strings
    are blanked out, then the brackets are counted (linear time, no recursion)."""
    brackets = _JSON_STRING.sub(b'""', body).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(_STEP[b] for b in brackets), default=0)


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
        depth = json_depth(bytes(body)) if body else 0
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
