"""The ``LLM`` protocol, and what every LLM server adapter shares (``ServerLLM``).

``LLM`` is what the rest of the code depends on. ``ServerLLM`` holds the parts that do not depend
on the server's API: the checked settings (timeouts, context, temperature, answer length, thinking),
the cached ``status()``, error translation that forgets the cached status when the server or model
is gone, every call -- streamed or not -- as a cancellable ``ChatStream`` with a real deadline, and the
hook that hands a call's socket over so it can be cut. An adapter (``ollama``, ``openai``) adds its
client, ``_probe``, ``_request``, ``_stream``, ``_once`` and ``_classify``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rag.errors import ConfigError, LLMError, LLMModelNotFound, LLMUnavailable
from rag.llms.stream import ChatStream, Progress, deadline_error
from rag.llms.thinking import think_value

# A connection to a live server takes milliseconds; don't spend the whole
# generation timeout waiting for a dead one.
MAX_CONNECT_TIMEOUT = 5.0
STATUS_TTL = 5.0


@dataclass(frozen=True)
class LLMStatus:
    reachable: bool  # the server answers
    model_available: bool  # ... and has the model
    model: str
    detail: str  # one sentence for the user, e.g. "... Run `ollama pull qwen2.5:7b-instruct`."

    @property
    def ok(self) -> bool:
        return self.reachable and self.model_available


@runtime_checkable
class LLM(Protocol):
    name: str  # e.g. "ollama"
    model: str

    def status(self) -> LLMStatus: ...

    def chat(self, messages: list[dict], *, num_ctx: int | None = None, max_tokens: int | None = None) -> str: ...

    def stream_chat(
        self, messages: list[dict], *, num_ctx: int | None = None, max_tokens: int | None = None
    ) -> Iterator[str]: ...


def _check_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content", ""), str):
            raise ValueError(f"messages[{i}] must be a dict with a 'role' and a string 'content', got {m!r:.80}")
        out.append(dict(m))
    return out


def _positive(name: str, value: Any, kind: type = float, error: type[Exception] = ConfigError) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise error(f"{name} must be a positive number, got {value!r}")
    return kind(value)


class ServerLLM:
    """The shared half of an LLM server adapter (see the module docstring)."""

    name = ""
    server = ""  # "Ollama at http://..." -- how messages name the server

    def _configure(self, model: str, timeout: float, probe_timeout: float, num_ctx: int, temperature: float,
                   max_tokens: int, status_ttl: float, think: str | bool | None) -> None:
        if not model or not model.strip():
            raise ConfigError("the LLM model name is empty")
        self.model = model.strip()
        self.timeout = _positive("llm_timeout", timeout)
        self.probe_timeout = _positive("llm_probe_timeout", probe_timeout)
        self.num_ctx = _positive("num_ctx", num_ctx, int)
        self.max_tokens = _positive("max_answer_tokens", max_tokens, int)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.status_ttl = status_ttl
        try:
            self.think = think_value(think)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.connect_timeout = min(self.timeout, max(self.probe_timeout, MAX_CONNECT_TIMEOUT))
        self._status_lock = threading.Lock()
        self._status_cache: tuple[float, LLMStatus] | None = None

    def close(self) -> None:
        self._client.close()
        self._probe_client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -------------------------------------------------------------- status
    def status(self, *, refresh: bool = False) -> LLMStatus:
        """Is the server up and does it have the model? Cached for ``status_ttl`` seconds."""
        with self._status_lock:
            cached = self._status_cache
            if not refresh and cached is not None and time.monotonic() - cached[0] < self.status_ttl:
                return cached[1]
            status = self._probe()
            self._status_cache = (time.monotonic(), status)
            return status

    def _forget_status(self) -> None:
        self._status_cache = None

    def _probe(self) -> LLMStatus:
        raise NotImplementedError

    # ---------------------------------------------------------------- chat
    def chat(self, messages: list[dict], *, num_ctx: int | None = None, max_tokens: int | None = None) -> str:
        """The whole answer at once (the rewrite, the judge). Like ``stream_chat`` the whole call ends at
        ``timeout``: a server that drips its response body a byte at a time, each byte inside the read
        timeout, is cut at the deadline and ``LLMTimeout`` raised (``rag.llms.stream.ChatStream``)."""
        request = self._request(messages, num_ctx, max_tokens)
        progress = Progress()
        call = ChatStream(lambda on_connect: self._once(request, on_connect), progress, deadline=self.timeout,
                          on_timeout=lambda p: deadline_error(self.server, self.model, self.timeout, p))
        with call:
            return "".join(call)

    def _once(self, request: dict, on_connect: Callable[[Any], None]) -> Iterator[str]:
        """One non-streamed request on a client of its own (so its socket can be cut): yields the answer once."""
        raise NotImplementedError

    def _limits(self, num_ctx: int | None, max_tokens: int | None) -> tuple[int, int]:
        """The request's context and answer length (the configured ones unless given), checked."""
        return (_positive("num_ctx", self.num_ctx if num_ctx is None else num_ctx, int, ValueError),
                _positive("max_tokens", self.max_tokens if max_tokens is None else max_tokens, int, ValueError))

    def stream_chat(
        self, messages: list[dict], *, num_ctx: int | None = None, max_tokens: int | None = None
    ) -> ChatStream:
        """The answer piece by piece. Arguments are checked now; the request is sent on the first
        ``next()``. Errors are raised from the iteration -- a broken stream after the pieces that did
        arrive. ``close()`` (from any thread, also while another thread waits in ``next()``) cuts the
        connection: the server sees the client leave and stops generating. The whole request ends at
        ``timeout`` whether or not pieces arrive (``rag.llms.stream``)."""
        request = self._request(messages, num_ctx, max_tokens)
        progress = Progress()
        return ChatStream(lambda on_connect: self._stream(request, progress, on_connect), progress,
                          deadline=self.timeout,
                          on_timeout=lambda p: deadline_error(self.server, self.model, self.timeout, p))

    def _request(self, messages: Sequence[Mapping[str, Any]], num_ctx: int | None, max_tokens: int | None) -> dict:
        raise NotImplementedError

    def _stream(self, request: dict, progress: Progress, on_connect: Callable[[Any], None]) -> Iterator[str]:
        raise NotImplementedError

    @staticmethod
    def _connect_hooks(on_connect: Callable[[Any], None]) -> dict[str, list]:
        """httpx ``event_hooks`` that hand the connection's socket to ``on_connect`` once it is made
        (the ``trace`` extension), so one answer's socket can be cut."""

        def trace(event: str, info: dict) -> None:
            if event.startswith("connection.connect_") and event.endswith(".complete"):
                on_connect(info.get("return_value"))

        def add_trace(request: Any) -> None:
            request.extensions["trace"] = trace

        return {"request": [add_trace]}

    # ---------------------------------------------------------- translation
    def _translate(self, exc: BaseException, *, timeout: float, progress: Progress | None = None) -> LLMError:
        """A library exception as one of the project's errors (never raises)."""
        err = self._classify(exc, timeout, progress)
        if isinstance(err, (LLMUnavailable, LLMModelNotFound)):
            self._forget_status()
        return err

    def _classify(self, exc: BaseException, timeout: float, progress: Progress | None) -> LLMError:
        raise NotImplementedError
