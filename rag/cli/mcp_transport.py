"""The stdio transport of ``rag mcp``: the official SDK's ``stdio_server``, with every request answered.

The SDK drops a line it cannot read as a JSON-RPC message without a word: a malformed line, a JSON
value that is not a message, and a request whose strings hold a lone surrogate (``"\\ud800"`` is valid
JSON, but not Unicode text: pydantic refuses it), so the client waits for ever and nothing is logged.
Here each line is checked first, as the SDK will read it; a line it would drop gets the reply
JSON-RPC 2.0 asks for, logged on stderr, and the SDK never sees it:

* not JSON: ``-32700`` (parse error, ``id`` null);
* JSON, but not a request, notification or response: ``-32600`` (invalid request), with its ``id``
  when it has one;
* a request with a lone surrogate: ``-32602`` (invalid params), with its ``id``;
* a notification (no ``id``) that cannot be read: nothing (JSON-RPC never answers notifications), logged.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from typing import Any, AsyncIterator

import anyio

log = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")


class _Unowned(io.TextIOWrapper):
    """A text layer over ``sys.stdin.buffer`` that never closes it."""

    def close(self) -> None:
        try:
            self.detach()
        except ValueError:
            pass


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def refusal(line: str) -> tuple[Any, int, str] | None:
    """For a line the SDK cannot read: (id, code, message) of the error reply, or None (a notification)."""
    import mcp_types as types

    try:
        value = json.loads(line)
    except ValueError as e:
        return None, types.PARSE_ERROR, f"Parse error: the line is not JSON ({e})"
    rid = value.get("id") if isinstance(value, dict) else None
    if not isinstance(rid, (str, int)) or isinstance(rid, bool) or _has_surrogate(rid):
        rid = None
    if isinstance(value, dict) and "method" in value and "id" not in value:
        return None  # a notification: never answered
    if isinstance(value, dict) and isinstance(value.get("method"), str) and _has_surrogate(value):
        return rid, types.INVALID_PARAMS, ("Invalid params: a string holds a lone surrogate (such as \\ud800), "
                                           "which is not Unicode text")
    return rid, types.INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 request, notification or response"


class CheckedLines:
    """The lines of ``lines`` that the SDK can read; the others are answered (``refusal``) on ``replies``."""

    def __init__(self, lines: Any) -> None:
        self._lines = lines
        self._replies: Any = None
        self._ready = anyio.Event()

    def reply_on(self, write_stream: Any) -> None:
        """The transport's write stream (it exists only once the transport runs)."""
        self._replies = write_stream
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._checked()

    async def _checked(self) -> AsyncIterator[str]:
        import mcp_types as types
        from mcp.shared.message import SessionMessage

        async for line in self._lines:
            if not line.strip():
                continue
            try:
                types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            except Exception:  # noqa: BLE001 - whatever the SDK would drop
                why = refusal(line)
                shown = line.strip()[:200]
                if why is None:
                    log.warning("MCP: ignored a notification that cannot be read: %s", shown)
                    continue
                rid, code, message = why
                log.warning("MCP: refused (%d) %s", code, shown)
                reply = types.JSONRPCError(jsonrpc="2.0", id=rid, error=types.ErrorData(code=code, message=message))
                await self._ready.wait()
                try:
                    await self._replies.send(SessionMessage(reply))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                continue
            yield line


def checked_stdio_server():
    """``mcp.server.stdio.stdio_server`` reading stdin through ``CheckedLines``; yields (read, write) streams."""
    from contextlib import asynccontextmanager

    from mcp.server.stdio import stdio_server

    @asynccontextmanager
    async def transport():
        lines = CheckedLines(anyio.wrap_file(_Unowned(sys.stdin.buffer, encoding="utf-8", errors="replace")))
        async with stdio_server(stdin=lines) as (read_stream, write_stream):
            lines.reply_on(write_stream)
            yield read_stream, write_stream

    return transport()


async def serve(server: Any) -> None:
    """Run an ``MCPServer`` on the checked stdio transport (as its ``run("stdio")`` does on the SDK's)."""
    lowlevel = getattr(server, "_lowlevel_server", None)  # (MCPServer has no public name for it)
    if lowlevel is None:  # another SDK version: its own transport
        return await server.run_stdio_async()
    async with checked_stdio_server() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
