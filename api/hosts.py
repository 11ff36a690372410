"""The Host check (DNS rebinding): a request for a host name the server does not answer to gets 400 before
anything else runs, as JSON like every other error (``{"detail", "error": "InvalidHost"}``; on ``/v1/...``
OpenAI's error shape), where Starlette's ``TrustedHostMiddleware`` answers in plain text."""

from __future__ import annotations

from starlette._utils import parse_host_header
from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send


class JsonTrustedHostMiddleware(TrustedHostMiddleware):
    """Starlette's allowed-hosts rules (exact names, ``*.example.org`` patterns), a JSON 400 for the rest."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = Headers(scope=scope).get("host")
        parsed = parse_host_header(raw)
        host = parsed.host.lower() if parsed is not None else None
        if host is not None and any(host == p or (p.startswith("*") and host.endswith(p[1:])) for p in self.allowed_hosts):
            await self.app(scope, receive, send)
            return
        detail = (f"this server does not answer to the host name {raw!r}; it answers to "
                  f"{', '.join(self.allowed_hosts)} (RAG_ALLOWED_HOSTS adds names)" if raw else "the request has no Host header")
        if scope.get("path", "").startswith("/v1/"):  # OpenAI's shape for OpenAI clients
            body = {"error": {"message": detail, "type": "invalid_request_error", "param": None, "code": "invalid_host"}}
        else:
            body = {"detail": detail, "error": "InvalidHost", "code": "invalid_host"}
        await JSONResponse(body, status_code=400)(scope, receive, send)
