"""An OpenAI-compatible chat endpoint, so any OpenAI-style chat client (Open WebUI, LibreChat,
the ``openai`` Python package ...) can use the archive as a "model".

    GET  /v1/models              the "models": rag (auto), rag-ollama, rag-extractive
    POST /v1/chat/completions    the answer to the last user message, streaming (SSE chunks,
                                 ``data: [DONE]``) or not

The reply's content is the cited answer with its sources listed under it (``[1] title — „quote”``),
escaped for clients that render Markdown or HTML (``rag.answer.sources``); a ``citations`` field (on
the completion, and on the last chunk when streaming) carries the same structured citations as
``/api/ask``. Earlier ``user`` and ``assistant`` messages are the conversation history for follow-up
questions; ``system`` messages are ignored (the archive has its own instructions). Extensions: ``k``
(passages, 1..50) and ``mode`` (bm25 | dense | hybrid). No API key is needed (like ``/api/ask``);
clients that insist on one may send anything.

Errors have OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, AsyncIterator, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.answer.choice import choose_generator
from rag.answer.sources import MarkupEscaper, answer_with_sources, mark_unverified, sources_block
from rag.contract import MAX_HISTORY_TURNS, MAX_K, AskRequest, check_length, parse
from rag.errors import RagError
from rag.text import detect_language

from .answering import (_DONE, CancellableLLM, GuardedStream, closer, next_in_thread, run_until_disconnected,
                        stream_deadline)
from .answering import next_event as _next
from .errors import RETRY_AFTER, ServerBusy, error_body, status_for
from .gates import NO_GATE

log = logging.getLogger(__name__)

class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorOut(BaseModel):
    """OpenAI's error shape, used by every /v1 error answer."""
    error: OpenAIErrorDetail


router = APIRouter(prefix="/v1", tags=["openai"], responses={
    status: {"model": OpenAIErrorOut, "description": what} for status, what in {
        400: "the request cannot be used", 404: "no such model", 405: "method not allowed",
        422: "the request cannot be used", 500: "an unexpected error",
        502: "the language model's answer broke off", 503: "busy, index missing or the language model unavailable",
        504: "the language model did not answer in time"}.items()})

MODELS = {"rag": "auto", "rag-ollama": "ollama", "rag-openai": "openai", "rag-extractive": "extractive"}
OWNER = "nk-rag"
CREATED = 1_700_000_000  # a fixed "created" for the model list


# ============================================================================ errors

class OpenAIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def translate(exc: BaseException) -> OpenAIError:
    """The project's errors (and the server's "busy") in OpenAI's terms."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, ServerBusy):
        return OpenAIError(503, str(exc), "server_error", code="server_busy", headers={"Retry-After": str(RETRY_AFTER)})
    status = status_for(exc)
    message = error_body(exc)["detail"]
    if status == 422:  # InvalidQuery: OpenAI says 400 for a request it cannot use
        return OpenAIError(400, message, "invalid_request_error", param="messages", code="invalid_value")
    if status == 404:
        return OpenAIError(404, message, "not_found_error")
    if status >= 500 and not isinstance(exc, RagError):
        log.error("/v1 request failed", exc_info=exc)
    return OpenAIError(status, message, "server_error", code=type(exc).__name__ if isinstance(exc, RagError) else None)


# ============================================================================ request

class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, user ...: accepted, not used
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    n: int = Field(1, ge=1, le=1)
    k: int = Field(5, ge=1, le=MAX_K)
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"


def text_of(m: Message) -> str:
    """The text of a message (a string, or the text parts of a content list)."""
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    return "\n".join(str(p.get("text", "")) for p in m.content if p.get("type") in ("text", "input_text"))


def parse_request(raw: bytes) -> ChatRequest:
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise OpenAIError(400, "the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise OpenAIError(400, "the request body must be a JSON object", code="invalid_type")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(x) for x in err.get("loc", ())) or None
        msg = "this field is required" if err.get("type") == "missing" else str(err.get("msg", "invalid value"))
        raise OpenAIError(400, f"{param}: {msg}" if param else msg, param=param,
                          code="missing_required_parameter" if err.get("type") == "missing" else "invalid_value") from None


def question_and_history(req: ChatRequest) -> tuple[str, list[dict[str, str]]]:
    """The last message (must be the user's) and the user/assistant turns before it."""
    last = req.messages[-1]
    if last.role != "user":
        raise OpenAIError(400, f"the last message must be the user's question (got role '{last.role}')",
                          param="messages", code="invalid_value")
    question = text_of(last)
    if not question.strip():
        raise OpenAIError(400, "the last user message has no text", param="messages", code="invalid_value")
    history = [{"role": m.role, "content": text_of(m)} for m in req.messages[:-1]
               if m.role in ("user", "assistant") and text_of(m).strip()]
    return question, history[-MAX_HISTORY_TURNS:]


# ============================================================================ responses

def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def chunk(cid: str, model: str, created: int, delta: dict, finish: str | None = None, **extra) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return "data: " + json.dumps(body, ensure_ascii=False) + "\n\n"


def completion(model: str, answer: dict[str, Any]) -> dict[str, Any]:
    content = answer_with_sources(answer["answer"], answer["citations"], answer.get("question", ""),
                                  answer.get("verdicts") or ())
    return {
        "id": completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "citations": answer["citations"],
        "rag": rag_fields(answer),
    }


RAG_FIELDS = ("generator", "abstained", "abstain_reason", "standalone_question", "warnings", "support", "verdicts",
              "flags")


def rag_fields(answer: dict[str, Any]) -> dict[str, Any]:
    """The extra fields beside OpenAI's: who answered, support, and the verdict on every sentence."""
    return {k: answer.get(k) for k in RAG_FIELDS}


def _tail(streamed: str, final: str) -> str:
    """What to add after the streamed tokens so the client ends with the checked answer: the rest
    when the checked text continues the streamed one, else the checked text after a separator
    (the citation checker changed numbers inside it)."""
    s, f = streamed.strip(), final.strip()
    if f.startswith(s):
        return f[len(s):]
    return "\n\n---\n" + f


async def stream_completion(gen, first, gate, model: str, question: str, cancel=None,
                            deadline: float | None = None) -> GuardedStream:
    """The pipeline's events as OpenAI chunks; the LLM call is cancelled, the generator closed and the
    slot released however the response ends, at the latest at ``deadline`` (like ``/api/ask``'s stream)."""
    cid, created = completion_id(), int(time.time())
    close = closer(gen, gate.release, cancel)

    async def events() -> AsyncIterator[str]:
        yield chunk(cid, model, created, {"role": "assistant", "content": ""})
        streamed: list[str] = []
        escape = MarkupEscaper()  # the client renders Markdown, maybe HTML: no tag or handler reaches it
        ev = first
        try:
            while ev is not _DONE:
                if ev.kind == "token" and ev.data:
                    streamed.append(ev.data)
                    piece = escape.feed(ev.data)
                    if piece:
                        yield chunk(cid, model, created, {"content": piece})
                elif ev.kind == "done":
                    answer = ev.data.to_dict()
                    shown = mark_unverified(answer["answer"], answer.get("verdicts") or (), detect_language(question))
                    tail = _tail("".join(streamed), shown)
                    block = sources_block(answer["citations"], detect_language(question))
                    extra = escape.feed(tail + (f"\n\n{block}" if block else ""), final=True)
                    if extra:
                        yield chunk(cid, model, created, {"content": extra})
                    yield chunk(cid, model, created, {}, "stop", citations=answer["citations"], rag=rag_fields(answer))
                    break
                ev = await next_in_thread(gen, _next)
            yield "data: [DONE]\n\n"
        except Exception as exc:  # after the 200 went out: an error object in the stream
            yield error_chunk(exc)
        finally:
            await close()

    return GuardedStream(events(), close, deadline=deadline, last_word=error_chunk, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def error_chunk(exc: Exception) -> str:
    """An error after the 200 went out: an error object in the stream."""
    return "data: " + json.dumps(translate(exc).body(), ensure_ascii=False) + "\n\n"


# ============================================================================ routes

@router.get("/models")
async def list_models() -> dict[str, Any]:
    """The archive as models: ``rag`` answers with the configured LLM when it is up (else extractively),
    ``rag-ollama`` / ``rag-openai`` always with that backend (RAG_GENERATOR), ``rag-extractive`` never
    with an LLM."""
    return {"object": "list", "data": [{"id": m, "object": "model", "created": CREATED, "owned_by": OWNER}
                                       for m in MODELS]}


@router.get("/models/{model_id}")
async def get_model(model_id: str):
    if model_id not in MODELS:
        return OpenAIError(404, f"the model '{model_id}' does not exist (use one of: {', '.join(MODELS)})",
                           param="model", code="model_not_found").response()
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": OWNER}


@router.post("/chat/completions")
async def chat_completions(request: Request):
    """OpenAI's chat completion, answered from the archive with citations."""
    try:
        req = parse_request(await request.body())
        generator = MODELS.get(req.model)
        if generator is None:
            raise OpenAIError(404, f"the model '{req.model}' does not exist (use one of: {', '.join(MODELS)})",
                              param="model", code="model_not_found")
        question, history = question_and_history(req)
        st = request.app.state.rag.now()  # one index version for the whole answer
        # the one contract: the question, and every history turn within its limit (as on /api/ask)
        parse(AskRequest, question=question, k=req.k, mode=req.mode, generator=generator, history=history)
        check_length(question, st.settings.max_question_chars)
        if st.runtime is None:
            raise OpenAIError(503, "the index is not loaded yet; try again in a moment", "server_error")
        if st.pipeline is None:
            st.pipeline = st.make_pipeline(st.runtime)
        kwargs = dict(k=req.k, mode=req.mode, generator=generator, history=history or None)
        # decided once, with the LLM slot taken for it (as /api/ask does)
        choice = await anyio.to_thread.run_sync(choose_generator, st.pipeline.llm, generator)
        gate = st.gate if choice.use_llm else NO_GATE
        await gate.acquire()
        pipeline = st.pipeline.with_choice(choice)
    except Exception as exc:
        return translate(exc).response()

    llm = pipeline.llm = CancellableLLM(pipeline.llm) if pipeline.llm is not None else None
    if not req.stream:
        try:
            answer = await run_until_disconnected(request, lambda: pipeline.ask(question, **kwargs),
                                                  on_disconnect=llm.cancel if llm else (lambda: None))
        except Exception as exc:
            return translate(exc).response()
        finally:
            gate.release()
        return completion(req.model, answer.to_dict())

    try:
        gen = pipeline.ask_stream(question, **kwargs)
        first = await anyio.to_thread.run_sync(_next, gen)
    except Exception as exc:
        gate.release()
        return translate(exc).response()
    except BaseException:
        gate.release()
        raise
    # the stream may run RAG_LLM_TIMEOUT (+1 s) from here: a client that stops reading is cut then
    return await stream_completion(gen, first, gate, req.model, question, cancel=llm.cancel if llm else None,
                                   deadline=stream_deadline(st.settings.llm_timeout))
