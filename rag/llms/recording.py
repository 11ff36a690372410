"""An ``LLM`` that passes every call to another one and keeps what went in and what came out.

Used to record a real model's raw answers (``eval/record_llm.py``, replayed in the tests as cassettes)
and to time the first piece of a streamed answer (``rag bench --only llm``). Each call is a dict:
``{"kind": "chat"|"stream", "messages": [...], "text": raw reply, "first_s": seconds to the first piece,
"total_s": seconds to the end, "error": message or None}``. Thread-safe: calls are appended under a lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator


class RecordingLLM:
    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.name = llm.name
        self.model = llm.model
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def __getattr__(self, item: str) -> Any:  # timeout, num_ctx ... of the wrapped adapter
        return getattr(self.llm, item)

    def status(self, *a: Any, **kw: Any):
        return self.llm.status(*a, **kw)

    def _keep(self, call: dict) -> dict:
        with self._lock:
            self.calls.append(call)
        return call

    def chat(self, messages: list[dict], **kw: Any) -> str:
        call = self._keep({"kind": "chat", "messages": messages, "text": "", "first_s": None, "total_s": None,
                           "error": None})
        t = time.perf_counter()
        try:
            call["text"] = self.llm.chat(messages, **kw)
            return call["text"]
        except Exception as e:
            call["error"] = str(e)
            raise
        finally:
            call["total_s"] = call["first_s"] = time.perf_counter() - t

    def stream_chat(self, messages: list[dict], **kw: Any) -> Iterator[str]:
        stream = self.llm.stream_chat(messages, **kw)
        call = self._keep({"kind": "stream", "messages": messages, "text": "", "first_s": None, "total_s": None,
                           "error": None})
        return _Recorded(stream, call)


class _Recorded:
    """The wrapped stream, closable like it; pieces are added to the call as they pass."""

    def __init__(self, stream: Any, call: dict) -> None:
        self.stream = stream
        self.call = call
        self.t0: float | None = None

    def __iter__(self) -> "_Recorded":
        return self

    def __next__(self) -> str:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        try:
            piece = next(self.stream)
        except StopIteration:
            self._end()
            raise
        except Exception as e:
            self.call["error"] = str(e)
            self._end()
            raise
        if self.call["first_s"] is None:
            self.call["first_s"] = time.perf_counter() - self.t0
        self.call["text"] += piece
        return piece

    def _end(self) -> None:
        if self.call["total_s"] is None and self.t0 is not None:
            self.call["total_s"] = time.perf_counter() - self.t0

    def close(self) -> None:
        self._end()
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()
