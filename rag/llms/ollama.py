"""The Ollama adapter: ``OllamaLLM`` implements the ``LLM`` protocol (``rag.llms.base``)
with the official ``ollama`` client. Every library exception is translated into
the project's errors (``rag.errors``):

==========================================  =====================
what happened                               raised
==========================================  =====================
connection refused / unreachable / bad URL  ``LLMUnavailable``
HTTP 404 "model ... not found"              ``LLMModelNotFound``
no answer within the timeout                ``LLMTimeout``
stream cut off, no done line, non-JSON      ``LLMStreamBroken``
any other error answer from the server      ``LLMError``
==========================================  =====================

A stall or break message says what had arrived ("stopped after 3 pieces (13 characters)
..."); only when no piece came does it hint that a model may still be loading.

Time limits: ``timeout`` bounds every wait for the server (connecting, and each
read -- so a server that does not send its first byte in time fails after
``timeout`` seconds), and the whole request, streamed or not, is a real deadline: a
timer cuts the connection at ``timeout`` whether or not a byte arrives (``ChatStream``).
``status()`` uses a separate client with the short ``probe_timeout``.

Thinking (``rag.llms.thinking``): ``think`` (``RAG_THINK``, default False) is sent as
Ollama's ``think`` when ``/api/show`` lists the ``thinking`` capability; the trace
(``message.thinking``, or ``<think>`` blocks in the content) never reaches the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import ollama

from rag.errors import ConfigError, LLMError, LLMModelNotFound, LLMStreamBroken, LLMTimeout, LLMUnavailable
from rag.llms.base import STATUS_TTL, LLMStatus, ServerLLM, _check_messages
from rag.llms.stream import Progress
from rag.llms.thinking import ThinkStripper, strip_thinking

__all__ = ["OllamaLLM"]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ helpers
def _same_model(a: str, b: str) -> bool:
    return _normalize_model(a) == _normalize_model(b)


def _normalize_model(name: str) -> str:
    """``"llama3"`` and ``"llama3:latest"`` name the same model."""
    name = (name or "").strip()
    if name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _keep_alive(value: str | float | int | None) -> str | float | int | None:
    """Ollama wants a duration string ("10m") or a number of seconds; "300" means 300 s."""
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    return value


# ------------------------------------------------------------------ adapter
class OllamaLLM(ServerLLM):
    """An Ollama server and one of its models, through the official client."""

    name = "ollama"

    def __init__(
        self,
        host: str = "http://127.0.0.1:11434",
        model: str = "qwen2.5:7b-instruct",
        timeout: float = 120.0,
        probe_timeout: float = 2.0,
        num_ctx: int = 8192,
        keep_alive: str | float | None = "10m",
        temperature: float = 0.1,
        max_tokens: int = 512,
        *,
        status_ttl: float = STATUS_TTL,
        think: str | bool | None = False,
    ) -> None:
        self._configure(model, timeout, probe_timeout, num_ctx, temperature, max_tokens, status_ttl, think)
        self.host = host
        self.server = f"Ollama at {host}"
        self.keep_alive = _keep_alive(keep_alive)
        self._capabilities: tuple[float | None, list[str]] | None = None  # (when it failed, or None; list)
        self._timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout)
        self._ssl_context = httpx.create_ssl_context()  # made once: each streamed answer has its own client
        try:
            self._client = ollama.Client(host=host, timeout=self._timeout)
            self._probe_client = ollama.Client(host=host, timeout=httpx.Timeout(self.probe_timeout))
        except Exception as exc:  # malformed host
            raise ConfigError(f"cannot use Ollama host {host!r}: {exc}") from exc

    @classmethod
    def from_settings(cls, settings: Any) -> "OllamaLLM":
        return cls(
            host=settings.ollama_host,
            model=settings.llm_model,
            timeout=settings.llm_timeout,
            probe_timeout=settings.llm_probe_timeout,
            num_ctx=settings.num_ctx,
            keep_alive=settings.keep_alive,
            temperature=settings.temperature,
            max_tokens=settings.max_answer_tokens,
            think=getattr(settings, "think", False),
        )

    def __repr__(self) -> str:
        return f"OllamaLLM(host={self.host!r}, model={self.model!r})"

    # -------------------------------------------------------------- status
    def _probe(self) -> LLMStatus:
        host, model = self.host, self.model
        try:
            listing = self._probe_client.list()
            names = [m.model for m in listing.models if m.model]
        except Exception as exc:
            err = self._translate(exc, timeout=self.probe_timeout)
            if isinstance(err, LLMUnavailable):
                return LLMStatus(False, False, model, str(err))
            if isinstance(err, LLMTimeout):
                detail = f"Ollama at {host} did not answer within {self.probe_timeout:g} s; is `ollama serve` running and healthy?"
                return LLMStatus(False, False, model, detail)
            if isinstance(err, LLMStreamBroken):
                detail = f"Something answers at {host}, but it does not speak the Ollama API; check OLLAMA_HOST."
                return LLMStatus(False, False, model, detail)
            return LLMStatus(True, False, model, f"Ollama at {host} answered with an error: {err.args[0]}")
        if any(_same_model(n, model) for n in names):
            return LLMStatus(True, True, model, f"Ollama at {host} is running and has the model {model}.")
        return LLMStatus(
            True, False, model, f"Ollama at {host} does not have the model {model}: run `ollama pull {model}`."
        )

    def context_length(self) -> int | None:
        """The model's trained context length (``/api/show`` model_info), or None if not reported."""
        try:
            info = self._probe_client.show(self.model).modelinfo or {}
        except Exception as exc:
            raise self._translate(exc, timeout=self.probe_timeout) from exc
        for key, value in info.items():
            if key.endswith(".context_length") and isinstance(value, int):
                return value
        return None

    def capabilities(self) -> list[str]:
        """What the model can do (``/api/show`` capabilities: "completion", "thinking" ...); [] if unknown."""
        cached = self._capabilities
        if cached is not None and (cached[0] is None or time.monotonic() - cached[0] < self.status_ttl):
            return cached[1]
        try:
            found = list(self._probe_client.show(self.model).capabilities or [])
            self._capabilities = (None, found)  # a model's capabilities do not change: kept
        except Exception as exc:  # unknown: send no think flag (older servers reject it); asked again later
            log.debug("ollama %s: capabilities unknown (%s)", self.model, exc)
            found = []
            self._capabilities = (time.monotonic(), found)
        return found

    def _with_think(self, request: dict) -> dict:
        """``think`` as configured when the model can think; left out for models (and servers) that cannot."""
        if "thinking" in self.capabilities():
            return {**request, "think": self.think}
        if self.think:
            log.info("ollama %s: RAG_THINK=%s ignored, the model has no thinking capability", self.model, self.think)
        return request

    # ---------------------------------------------------------------- chat
    def _request(self, messages: Sequence[Mapping[str, Any]], num_ctx: int | None, max_tokens: int | None) -> dict:
        num_ctx, max_tokens = self._limits(num_ctx, max_tokens)
        return {
            "model": self.model,
            "messages": _check_messages(messages),
            "options": {"num_ctx": num_ctx, "temperature": self.temperature, "num_predict": max_tokens},
            "keep_alive": self.keep_alive,
        }

    def _once(self, request: dict, on_connect: Callable[[Any], None]) -> Iterator[str]:
        """The whole answer at once (``"stream": false``), on a client of its own so the deadline can cut it."""
        client = self._call_client(on_connect)
        try:
            response = client.chat(stream=False, **self._with_think(request))
        except Exception as exc:
            raise self._translate(exc, timeout=self.timeout) from exc
        finally:
            client.close()
        if response.done is not True:
            raise LLMStreamBroken(f"The answer from Ollama at {self.host} is incomplete (no done flag).")
        self._log_done(response)
        yield strip_thinking(response.message.content or "")

    def _call_client(self, on_connect: Callable[[Any], None]) -> ollama.Client:
        """A client of its own for one call, so its socket can be cut."""
        return ollama.Client(host=self.host, timeout=self._timeout, verify=self._ssl_context,
                             event_hooks=self._connect_hooks(on_connect))

    def _stream(self, request: dict, progress: Progress, on_connect: Callable[[Any], None]) -> Iterator[str]:
        client = self._call_client(on_connect)
        parts = None
        done = False
        strip = ThinkStripper()
        try:
            parts = client.chat(stream=True, **self._with_think(request))
            for part in parts:
                if not done:
                    raw = (part.message.content or "") if part.message is not None else ""
                    trace = (part.message.thinking or "") if part.message is not None else ""
                    content = strip.feed(raw)
                    if part.done:
                        content += strip.flush()
                    progress.add(content, len(trace) + len(raw) - len(content))
                    if content:
                        yield content
                    if part.done:
                        done = True
                        self._log_done(part)
        except LLMError:
            raise
        except Exception as exc:
            raise self._translate(exc, timeout=self.timeout, progress=progress) from exc
        finally:
            if parts is not None:
                try:
                    parts.close()
                except Exception:  # closing a dead connection: nothing left to save
                    pass
            client.close()
        if not done:
            raise LLMStreamBroken(
                f"The answer from Ollama at {self.host} broke off after {progress} "
                "(the stream ended without its final message)."
            )

    def _log_done(self, response: Any) -> None:
        log.debug(
            "ollama %s: done_reason=%s prompt_eval_count=%s eval_count=%s",
            self.model,
            response.done_reason,
            response.prompt_eval_count,
            response.eval_count,
        )
        if response.done_reason == "length":
            log.info("ollama %s: answer cut off at the token limit (num_predict)", self.model)

    # ---------------------------------------------------------- translation
    def _classify(self, exc: BaseException, timeout: float, progress: "Progress | None") -> LLMError:
        host, model = self.host, self.model
        start_it = "Start it with `ollama serve` (or set OLLAMA_HOST to a running server)."
        started = progress is not None and progress.started
        after = f" after {progress}" if started else ""

        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, ollama.ResponseError):
            message = str(exc.error).strip()
            if exc.status_code == 404 and "not found" in message.lower() and "model" in message.lower():
                return LLMModelNotFound(
                    f"Ollama at {host} does not have the model {model}: run `ollama pull {model}`. ({message})"
                )
            if exc.status_code == -1:  # an {"error": ...} line inside a 200 stream
                return LLMStreamBroken(f"The answer from Ollama at {host} broke off{after}: {message}")
            return LLMError(f"Ollama at {host} answered with an error (HTTP {exc.status_code}): {message}")
        if isinstance(exc, httpx.ConnectTimeout):
            return LLMUnavailable(f"Ollama at {host} did not accept a connection within {timeout:g} s. {start_it}")
        if isinstance(exc, httpx.TimeoutException) and started:
            return LLMTimeout(
                f"Ollama at {host} stopped after {progress} of the answer and sent nothing more for "
                f"{timeout:g} s (model {model}); the model or the server seems stuck. Try again or raise "
                "RAG_LLM_TIMEOUT."
            )
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(
                f"Ollama at {host} did not answer within {timeout:g} s (model {model}). "
                "Loading a model can take a while the first time; try again or raise RAG_LLM_TIMEOUT."
            )
        # the ollama client turns httpx.ConnectError into a bare ConnectionError (not when streaming)
        refused = type(exc) is ConnectionError or isinstance(
            exc, (ConnectionRefusedError, httpx.ConnectError, httpx.UnsupportedProtocol, httpx.ProxyError, httpx.InvalidURL)
        )
        if refused:
            return LLMUnavailable(f"Ollama is not reachable at {host}. {start_it}")
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.DecodingError)):
            return LLMStreamBroken(f"The connection to Ollama at {host} dropped{after} ({exc or type(exc).__name__}).")
        if isinstance(exc, (ValueError, TypeError, KeyError)):  # JSONDecodeError, pydantic ValidationError ...
            return LLMStreamBroken(f"Ollama at {host} sent an answer that is not valid Ollama JSON{after}.")
        if isinstance(exc, OSError):  # ConnectionResetError & co. that slipped past httpx
            return LLMStreamBroken(f"The connection to Ollama at {host} failed{after}: {exc}")
        return LLMError(f"Talking to Ollama at {host} failed: {type(exc).__name__}: {exc}")
