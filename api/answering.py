"""Running an answer for one HTTP request: as JSON (cancelled when the client leaves) or as
Server-Sent Events. The pipeline runs in worker threads; the LLM slot is released however it ends."""

from __future__ import annotations

import json
import logging
import math
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from rag.errors import LLMError, LLMTimeout, RagError

from .errors import ClientGone, error_body, status_for

log = logging.getLogger(__name__)

DISCONNECT_POLL = 0.25  # seconds between checks whether the client is still there


class ClientLeft(LLMError):
    """Raised inside the pipeline's LLM stream when the client has gone (ends the call)."""


class CancellableLLM:
    """The request's view of the LLM adapter: ``cancel()`` (from the event loop, any time) closes every
    stream it handed out -- a ``ChatStream`` cuts its connection at once, also while a worker thread
    waits in it for the LLM's next byte, so the LLM server sees the client leave -- and the worker's
    iteration ends with ``ClientLeft``; a stream asked for after ``cancel()`` never starts."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._open: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            streams, self._open = self._open, []
        for stream in streams:
            try:
                stream.close()  # thread-safe for ChatStream (it cuts the socket of a running next())
            except Exception as e:  # a plain generator busy in another thread: it stops at its next piece
                log.debug("cancelling an LLM stream: %s", e)

    def stream_chat(self, messages: list[dict], **kw) -> Iterator[str]:
        if self._cancelled.is_set():
            raise ClientLeft("the client closed the connection")
        inner = self._llm.stream_chat(messages, **kw)
        cancelled = self._cancelled
        with self._lock:
            if hasattr(inner, "close"):
                self._open.append(inner)

        def pieces() -> Iterator[str]:
            try:
                for piece in inner:
                    if cancelled.is_set():
                        raise ClientLeft("the client closed the connection")
                    yield piece
                if cancelled.is_set():  # the stream ended because cancel() closed it
                    raise ClientLeft("the client closed the connection")
            finally:
                with self._lock:
                    if inner in self._open:
                        self._open.remove(inner)
                close = getattr(inner, "close", None)
                if close is not None:
                    close()

        return pieces()


async def run_until_disconnected(request: Request, work: Callable[[], Any], on_disconnect: Callable[[], None],
                                 runner: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None) -> Any:
    """``work()`` in a worker thread (``await runner(work)`` when given, e.g. ``SearchLimiter.run``), while
    watching the client. When it leaves: ``on_disconnect()`` and ``ClientGone`` at once (the thread is left
    to end on its own; it holds nothing of the caller's)."""
    result: dict[str, Any] = {}

    async def run(scope: anyio.CancelScope) -> None:
        try:
            if runner is None:
                result["value"] = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
            else:
                result["value"] = await runner(work)
        except BaseException as e:  # noqa: BLE001 - re-raised below, outside the task group
            result["error"] = e
        scope.cancel()

    async def watch(scope: anyio.CancelScope) -> None:
        while not await request.is_disconnected():
            await anyio.sleep(DISCONNECT_POLL)
        result["gone"] = True
        on_disconnect()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, tg.cancel_scope)
        tg.start_soon(watch, tg.cancel_scope)
    if "value" in result:
        return result["value"]
    if "error" in result and not isinstance(result["error"], anyio.get_cancelled_exc_class()):
        raise result["error"]
    raise ClientGone()


# ----------------------------------------------------------------------------- streaming

_DONE = object()


def next_event(it: Iterator) -> Any:
    try:
        return next(it)
    except StopIteration:
        return _DONE


async def next_in_thread(gen: Iterator, step: Callable[[Iterator], Any] = next_event) -> Any:
    """``step(gen)`` in a worker thread; a cancelled request (client gone) stops waiting for it at once."""
    return await anyio.to_thread.run_sync(step, gen, abandon_on_cancel=True)


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_payload(ev) -> tuple[str, Any]:
    if ev.kind == "sources":
        return "sources", {"sources": [h.to_dict() for h in ev.data]}
    if ev.kind == "token":
        return "token", {"text": ev.data}
    if ev.kind == "done":
        return "done", ev.data.to_dict()
    return str(ev.kind), ev.data


STREAM_GRACE = 1.0  # seconds past RAG_LLM_TIMEOUT before a stream is cut (the LLM's own deadline reports first)
LAST_WORD_SECONDS = 0.5  # how long the timeout event may wait for a socket that takes nothing


def stream_deadline(llm_timeout: float) -> float:
    """When a stream that starts now must be over (``GuardedStream``'s ``deadline``)."""
    return anyio.current_time() + llm_timeout + STREAM_GRACE


class GuardedStream(StreamingResponse):
    """A streaming response that runs ``on_close`` however it ends (finished, client gone, error),
    even when the body was never iterated.

    With a ``deadline`` (``anyio.current_time()`` clock) the response may not outlive it: a client that
    stops reading leaves ``send`` waiting for ever on a full socket, holding the LLM slot and the
    upstream LLM request. At the deadline the LLM call is cut and the slot freed (``on_close``), then
    ``last_word(LLMTimeout)`` (the stream's error event) is sent if the socket takes it within
    ``LAST_WORD_SECONDS``, and the response ends (the server closes a connection it could not finish)."""

    def __init__(self, content: AsyncIterator[str], on_close, *, deadline: float | None = None,
                 last_word: Callable[[Exception], str] | None = None, **kw) -> None:
        super().__init__(content, **kw)
        self._on_close = on_close
        self._deadline = deadline
        self._last_word = last_word

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            with anyio.CancelScope(deadline=self._deadline if self._deadline is not None else math.inf) as scope_:
                await super().__call__(scope, receive, tracked)
            if scope_.cancelled_caught:
                await self._on_close()  # the slot and the LLM call first
                await self._time_out(send, started)
        finally:
            await self._on_close()

    async def _time_out(self, send: Send, started: bool) -> None:
        log.warning("an answer stream was still running (a client not reading it?) at RAG_LLM_TIMEOUT; "
                    "its LLM call was stopped and its slot freed")
        if not started or self._last_word is None:
            return
        exc = LLMTimeout("the answer stream was stopped: it ran past RAG_LLM_TIMEOUT (the client did not read it, "
                         "or the LLM was too slow)")
        with anyio.move_on_after(LAST_WORD_SECONDS):
            await send({"type": "http.response.body", "body": self._last_word(exc).encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def closer(gen: Iterator, release: Callable[[], None],
           cancel: Callable[[], None] | None = None) -> Callable[[], Awaitable[None]]:
    """An idempotent async ``close()``: ``cancel()`` (the request's ``CancellableLLM``: cuts the LLM
    connection, also under a worker thread still waiting in the pipeline), closes the pipeline's
    generator in a worker thread, then calls ``release`` (the LLM slot), whatever happened before."""
    closed = False

    async def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            try:
                if cancel is not None:
                    cancel()
                with anyio.CancelScope(shield=True):  # also when the client went away (cancelled)
                    await anyio.to_thread.run_sync(gen.close)
            except Exception as e:  # closing a broken stream; or still running in an abandoned thread,
                log.debug("closing the answer stream: %s", e)  # which ends on its own now the LLM is cut
            finally:
                release()

    return close


def stream_answer(gen: Iterator, first: Any, release: Callable[[], None],
                  cancel: Callable[[], None] | None = None, deadline: float | None = None) -> GuardedStream:
    """Forward the pipeline's events (``first`` already fetched) as SSE. The generator is advanced
    in worker threads, one ``next()`` at a time; when the response ends for any reason the LLM call is
    cancelled (``cancel``), the generator closed and ``release`` called. A client that leaves while a
    worker thread waits for the LLM is noticed at once (Starlette cancels the response): the wait is
    abandoned, so the slot is freed without waiting for the LLM's next byte. A client that stays but
    stops reading is cut at ``deadline`` (``GuardedStream``)."""
    close = closer(gen, release, cancel)

    async def events() -> AsyncIterator[str]:
        ev = first
        try:
            while ev is not _DONE:
                name, data = event_payload(ev)
                yield sse(name, data)
                if name == "done":
                    break
                ev = await next_in_thread(gen)
        except Exception as exc:  # after the 200 went out, errors travel as an event
            yield error_event(exc)
        finally:
            await close()

    return GuardedStream(events(), close, deadline=deadline, last_word=error_event, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def error_event(exc: Exception) -> str:
    """An error after the 200 went out, as the SSE ``error`` event."""
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, RagError):
        log.error("answer stream failed", exc_info=exc)
    body = error_body(exc)
    return sse("error", {"message": body["detail"], "error": body["error"], "status": status})
