"""An OpenAI-compatible server (llama.cpp's llama-server, vLLM, LM Studio, LocalAI, Ollama's /v1)
behind the ``LLM`` protocol, through the official ``openai`` client.

Like ``OllamaLLM`` (``rag.llms.ollama``), every library exception becomes one of the project's errors:

==========================================  =====================
what happened                               raised
==========================================  =====================
connection refused / unreachable / bad URL  ``LLMUnavailable``
HTTP 404 naming the model                   ``LLMModelNotFound``
no answer within the timeout                ``LLMTimeout``
stream cut off, no finish_reason, non-JSON  ``LLMStreamBroken``
any other error answer (401, 500 ...)       ``LLMError``
==========================================  =====================

Status comes from ``GET /v1/models``. OpenAI servers do not report the model's context window,
so the prompt budget is the ``num_ctx`` setting (``RAG_NUM_CTX``). Streams ask for usage
(``stream_options.include_usage``), which is logged with the finish reason.

Time limits as for Ollama: ``timeout`` bounds connecting and each read, and the whole request,
streamed or not, is a real deadline (``ChatStream`` cuts the connection at ``timeout``). The client's own
retries are off: a retry would silently double the wait.

Thinking (``rag.llms.thinking``): ``think`` is sent as ``chat_template_kwargs.enable_thinking`` (read by
llama-server's and vLLM's Qwen3/DeepSeek templates, ignored by others) and, for a level, as
``reasoning_effort``; ``reasoning_content`` / ``reasoning`` deltas and ``<think>`` blocks never reach
the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx2
import openai

from rag.errors import ConfigError, LLMError, LLMModelNotFound, LLMStreamBroken, LLMTimeout, LLMUnavailable
from rag.llms.base import STATUS_TTL, LLMStatus, ServerLLM, _check_messages
from rag.llms.stream import Progress
from rag.llms.thinking import ThinkStripper, strip_thinking

__all__ = ["DEFAULT_BASE_URL", "OpenAILLM"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"  # llama-server's default port
NO_KEY = "sk-no-key-required"  # local servers without --api-key accept any key; the client needs one


def _reasoning(delta: Any) -> str:
    """The trace of a thinking model in a delta or message (``reasoning_content``, vLLM's ``reasoning``)."""
    extra = getattr(delta, "model_extra", None) or {}
    for key in ("reasoning_content", "reasoning"):
        value = extra.get(key) if key in extra else getattr(delta, key, None)
        if isinstance(value, str) and value:
            return value
    return ""


class OpenAILLM(ServerLLM):
    """One model on an OpenAI-compatible server, through the official ``openai`` client."""

    name = "openai"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        model: str = "qwen2.5:7b-instruct",
        api_key: str | None = None,
        timeout: float = 120.0,
        probe_timeout: float = 2.0,
        num_ctx: int = 8192,
        temperature: float = 0.1,
        max_tokens: int = 512,
        *,
        status_ttl: float = STATUS_TTL,
        think: str | bool | None = False,
    ) -> None:
        if not base_url or not str(base_url).strip():
            raise ConfigError("RAG_OPENAI_BASE_URL is empty (e.g. http://127.0.0.1:8080/v1)")
        self._configure(model, timeout, probe_timeout, num_ctx, temperature, max_tokens, status_ttl, think)
        self.base_url = str(base_url).strip().rstrip("/")
        self.host = self.base_url  # (what messages and /health show)
        self.api_key = api_key or None
        self.server = f"The OpenAI-compatible server at {self.base_url}"

        self._timeout = httpx2.Timeout(self.timeout, connect=self.connect_timeout)
        self._probe_timeout = httpx2.Timeout(self.probe_timeout)
        self._ssl_context = httpx2.create_ssl_context()  # made once (~0.1 s): each streamed answer has its own client
        try:
            httpx2.URL(self.base_url)
            self._client = self._make_client(self._timeout)
            self._probe_client = self._make_client(self._probe_timeout)
        except Exception as exc:  # malformed URL
            raise ConfigError(f"cannot use RAG_OPENAI_BASE_URL {base_url!r}: {exc}") from exc

    def _make_client(self, timeout: httpx2.Timeout, http_client: httpx2.Client | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key or NO_KEY, timeout=timeout,
                             max_retries=0,
                             http_client=http_client or httpx2.Client(timeout=timeout, verify=self._ssl_context))

    @classmethod
    def from_settings(cls, settings: Any) -> "OpenAILLM":
        return cls(
            base_url=settings.openai_base_url,
            model=settings.llm_model,
            api_key=settings.openai_api_key,
            timeout=settings.llm_timeout,
            probe_timeout=settings.llm_probe_timeout,
            num_ctx=settings.num_ctx,
            temperature=settings.temperature,
            max_tokens=settings.max_answer_tokens,
            think=settings.think,
        )

    def __repr__(self) -> str:
        return f"OpenAILLM(base_url={self.base_url!r}, model={self.model!r})"

    # -------------------------------------------------------------- status
    def _probe(self) -> LLMStatus:
        model, where = self.model, self.server
        try:
            names = [m.id for m in self._probe_client.models.list().data if getattr(m, "id", None)]
        except Exception as exc:
            err = self._translate(exc, timeout=self.probe_timeout)
            if isinstance(err, (LLMUnavailable, LLMTimeout)):
                return LLMStatus(False, False, model, str(err))
            if isinstance(err, LLMStreamBroken):
                return LLMStatus(False, False, model, f"Something answers at {self.base_url}, but it does not "
                                                      "speak the OpenAI API; check RAG_OPENAI_BASE_URL (it ends in /v1).")
            return LLMStatus(True, False, model, f"{where} answered with an error: {err.args[0]}")
        if model in names:
            return LLMStatus(True, True, model, f"{where} is running and serves the model {model}.")
        listed = ", ".join(names[:10]) or "none"
        return LLMStatus(True, False, model, f"{where} does not serve the model {model} (it lists: {listed}); "
                                             "set RAG_LLM_MODEL to one of them.")

    def context_length(self) -> int | None:
        """OpenAI servers do not report it: the prompt budget is RAG_NUM_CTX."""
        return None

    # ---------------------------------------------------------------- chat
    def _request(self, messages: Sequence[Mapping[str, Any]], num_ctx: int | None, max_tokens: int | None) -> dict:
        _, max_tokens = self._limits(num_ctx, max_tokens)  # the context is the server's (RAG_NUM_CTX budgets the prompt)
        request: dict[str, Any] = {
            "model": self.model,
            "messages": _check_messages(messages),
            "temperature": self.temperature,
            "max_tokens": max_tokens,
            "extra_body": {"chat_template_kwargs": {"enable_thinking": bool(self.think)}},
        }
        if isinstance(self.think, str):
            request["reasoning_effort"] = self.think
        return request

    def _once(self, request: dict, on_connect: Callable[[Any], None]) -> Iterator[str]:
        """The whole answer at once (``stream: false``), on a client of its own so the deadline can cut it."""
        client = self._call_client(on_connect)
        try:
            response = client.chat.completions.create(stream=False, **request)
            choice = response.choices[0]
        except Exception as exc:
            raise self._translate(exc, timeout=self.timeout) from exc
        finally:
            client.close()
        if choice.finish_reason is None:
            raise LLMStreamBroken(f"The answer from {self.base_url} is incomplete (no finish_reason).")
        self._log_done(choice.finish_reason, response.usage)
        yield strip_thinking(choice.message.content or "")

    def _call_client(self, on_connect: Callable[[Any], None]) -> openai.OpenAI:
        """A client of its own for one call, so its socket can be cut."""
        http = httpx2.Client(timeout=self._timeout, verify=self._ssl_context, event_hooks=self._connect_hooks(on_connect))
        return self._make_client(self._timeout, http)

    def _stream(self, request: dict, progress: Progress, on_connect: Callable[[Any], None]) -> Iterator[str]:
        client = self._call_client(on_connect)
        chunks = None
        finish = usage = None
        strip = ThinkStripper()
        try:
            chunks = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request)
            for chunk in chunks:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    delta = choice.delta
                    raw = (delta.content or "") if delta is not None else ""
                    content = strip.feed(raw)
                    if choice.finish_reason is not None:
                        content += strip.flush()
                        finish = choice.finish_reason
                    progress.add(content, len(_reasoning(delta)) + len(raw) - len(content))
                    if content:
                        yield content
        except LLMError:
            raise
        except Exception as exc:
            raise self._translate(exc, timeout=self.timeout, progress=progress) from exc
        finally:
            if chunks is not None:
                try:
                    chunks.close()
                except Exception:  # closing a dead connection: nothing left to save
                    pass
            client.close()
        if finish is None:
            raise LLMStreamBroken(f"The answer from {self.base_url} broke off after {progress} "
                                  "(the stream ended without a finish_reason).")
        self._log_done(finish, usage)

    def _log_done(self, finish: str | None, usage: Any) -> None:
        log.debug("openai %s: finish_reason=%s prompt_tokens=%s completion_tokens=%s", self.model, finish,
                  getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
        if finish == "length":
            log.info("openai %s: answer cut off at the token limit (max_tokens)", self.model)

    # ---------------------------------------------------------- translation
    def _classify(self, exc: BaseException, timeout: float, progress: Progress | None) -> LLMError:
        url, model, where = self.base_url, self.model, self.server
        start_it = "Start it (e.g. `llama-server -m model.gguf --port 8080`) or set RAG_OPENAI_BASE_URL."
        started = progress is not None and progress.started
        after = f" after {progress}" if started else ""
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc

        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            message = _error_message(exc)
            if exc.status_code == 404 and "model" in message.lower():
                return LLMModelNotFound(f"{where} does not serve the model {model}: set RAG_LLM_MODEL to a model "
                                        f"it lists at /v1/models. ({message})")
            if exc.status_code == 404:
                return LLMStreamBroken(f"{where} answered 404 for the chat completions endpoint; check "
                                       f"RAG_OPENAI_BASE_URL (it ends in /v1). ({message})")
            if exc.status_code in (401, 403):
                return LLMError(f"{where} refused the request (HTTP {exc.status_code}): {message}; "
                                "check RAG_OPENAI_API_KEY.")
            if exc.status_code == 400 and "context" in message.lower():
                return LLMError(f"{where} refused the prompt (HTTP 400): {message}; RAG_NUM_CTX ({self.num_ctx}) must "
                                "not exceed the context the server gives one request (llama-server: -c divided by -np).")
            return LLMError(f"{where} answered with an error (HTTP {exc.status_code}): {message}")
        if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
            # an error object inside a 200 stream, or a body that does not fit the schema
            return LLMStreamBroken(f"The answer from {url} broke off{after}: {exc.message}")
        if isinstance(cause, httpx2.ConnectTimeout):
            return LLMUnavailable(f"{where} did not accept a connection within {timeout:g} s. {start_it}")
        if isinstance(cause, (httpx2.TimeoutException, openai.APITimeoutError)) and started:
            return LLMTimeout(f"{where} stopped after {progress} of the answer and sent nothing more for "
                              f"{timeout:g} s (model {model}); the model or the server seems stuck. Try again or "
                              "raise RAG_LLM_TIMEOUT.")
        if isinstance(cause, (httpx2.TimeoutException, openai.APITimeoutError)):
            return LLMTimeout(f"{where} did not answer within {timeout:g} s (model {model}). "
                              "Loading a model can take a while the first time; try again or raise RAG_LLM_TIMEOUT.")
        if isinstance(cause, (httpx2.ConnectError, httpx2.UnsupportedProtocol, httpx2.ProxyError, httpx2.InvalidURL,
                              ConnectionRefusedError)):
            return LLMUnavailable(f"No OpenAI-compatible server is reachable at {url}. {start_it}")
        if isinstance(cause, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError,
                              httpx2.DecodingError)):
            return LLMStreamBroken(f"The connection to {url} dropped{after} ({cause or type(cause).__name__}).")
        if isinstance(cause, (ValueError, TypeError, KeyError, IndexError, AttributeError)):
            return LLMStreamBroken(f"{where} sent an answer that is not valid OpenAI JSON{after}.")
        if isinstance(cause, OSError):
            return LLMStreamBroken(f"The connection to {url} failed{after}: {cause}")
        if isinstance(exc, openai.APIConnectionError):
            return LLMStreamBroken(f"The connection to {url} failed{after}: {cause or exc}")
        return LLMError(f"Talking to {where} failed: {type(exc).__name__}: {exc}")


def _error_message(exc: Any) -> str:
    """The server's own words from an error body ({"error": {"message": ...}} or {"error": "..."})."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            inner = inner.get("message") or inner
        if isinstance(inner, str) and inner.strip():
            return inner.strip()
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return str(getattr(exc, "message", exc))
