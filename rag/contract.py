"""The request contract, written once: what a search or an ask may contain, and its limits.

``SearchRequest`` and ``AskRequest`` are the FastAPI bodies/parameters (so ``/docs`` shows them),
the CLI checks its options with them before loading any model, and the pipeline validates its
input with them. ``parse`` turns a pydantic error into ``InvalidQuery`` with one readable line.
The question's length limit is a setting (``RAG_MAX_QUESTION_CHARS``): ``check_length`` applies it.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rag.errors import InvalidQuery

Mode = Literal["bm25", "dense", "hybrid"]
GeneratorName = Literal["auto", "ollama", "openai", "extractive"]
MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")
GENERATORS: tuple[str, ...] = ("auto", "ollama", "openai", "extractive")
LLM_GENERATORS: tuple[str, ...] = ("ollama", "openai")  # name a backend (rag.llms.registry): always the LLM

MIN_K, MAX_K = 1, 50
DEFAULT_K = 5
MAX_HISTORY_TURNS = 50
MAX_TURN_CHARS = 20_000
K_MESSAGE = f"k must be a whole number from {MIN_K} to {MAX_K}"
TURN_SHAPE = '{"role": "user"|"assistant", "content": "..."}'


def encodable(text: str, what: str) -> str:
    """Refuse text that cannot be written as UTF-8 (a lone surrogate such as \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"the {what} contains characters that are not valid Unicode text (a lone surrogate)") from None
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls and DEL; tab and line breaks are fine


def not_blank(text: str, what: str) -> str:
    if not text.strip():
        raise ValueError(f"the {what} is empty")
    bad = _CONTROL.search(text)
    if bad:
        raise ValueError(f"the {what} contains a control character (U+{ord(bad.group()):04X}); send plain text")
    return encodable(text, what)


def check_length(text: str, max_chars: int, what: str = "question") -> str:
    """The setting-dependent limit (``RAG_MAX_QUESTION_CHARS``): InvalidQuery when over it."""
    if len(text) > max_chars:
        raise InvalidQuery(f"the {what} is too long ({len(text)} characters; at most {max_chars})")
    return text


def _one_of(value: Any, handler, what: str, allowed: tuple[str, ...]) -> Any:
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}") from None


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TURN_CHARS)

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        return encodable(v, "history")


class _Retrieval(BaseModel):
    """What both a search and an ask choose: how many passages, and how they are found."""

    k: int | None = Field(None, ge=MIN_K, le=MAX_K, description=f"number of passages to retrieve, {MIN_K} to "
                                                                  f"{MAX_K} (default RAG_TOP_K, {DEFAULT_K})")
    mode: Mode | None = Field(None, description="bm25 | dense | hybrid (default RAG_MODE, hybrid)")

    @field_validator("k", mode="wrap")
    @classmethod
    def _k(cls, v: Any, handler) -> int | None:
        try:
            return handler(v)
        except ValidationError:
            raise ValueError(K_MESSAGE) from None

    @field_validator("mode", mode="wrap")
    @classmethod
    def _mode(cls, v: Any, handler) -> str | None:
        return _one_of(v, handler, "mode", MODES)

    def with_defaults(self, settings: Any):
        """A copy with what was left out taken from the settings (RAG_TOP_K, RAG_MODE, RAG_GENERATOR)."""
        fill = {"k": settings.top_k, "mode": settings.mode, "generator": getattr(settings, "generator", None)}
        return self.model_copy(update={name: value for name, value in fill.items()
                                       if name in type(self).model_fields and getattr(self, name) is None})


class SearchRequest(_Retrieval):
    """What to look for (``GET /api/search``, ``rag search``)."""

    q: str = Field(description="what to look for, at most RAG_MAX_QUESTION_CHARS characters")

    @field_validator("q")
    @classmethod
    def _q(cls, v: str) -> str:
        return not_blank(v, "query")


class AskRequest(_Retrieval):
    """A question (``POST /api/ask``, ``rag ask``, ``Pipeline.ask``)."""

    question: str = Field(description="the question, at most RAG_MAX_QUESTION_CHARS characters")
    generator: GeneratorName | None = Field(None, description="auto | ollama | openai | extractive (default RAG_GENERATOR, auto)")
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS,
                                description="earlier turns of the conversation, oldest first")
    stream: bool | None = Field(None, description="reply with Server-Sent Events (sources, token..., done | error); "
                                                  "when left out, an 'Accept: text/event-stream' header decides")

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        return not_blank(v, "question")

    @field_validator("generator", mode="wrap")
    @classmethod
    def _generator(cls, v: Any, handler) -> str | None:
        return _one_of(v, handler, "generator", GENERATORS)

    @field_validator("history", mode="before")
    @classmethod
    def _history(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, (list, tuple)):
            bad = [i for i, t in enumerate(v) if not isinstance(t, dict)]
            if bad:
                raise ValueError(f"every turn must be an object {TURN_SHAPE}; item(s) {', '.join(map(str, bad))} "
                                 "are not")
        return v

    def history_dicts(self) -> list[dict] | None:
        return [t.model_dump() for t in self.history] or None


# ----------------------------------------------------------------------------- messages

def readable(errors: list[dict]) -> tuple[str, list[dict]]:
    """Pydantic/FastAPI errors as one line ("k: k must be ...; mode: ...") and a list of {field, message}."""
    parts, items = [], []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
        where = ".".join(loc)
        msg = str(e.get("msg", "invalid value"))
        kind = e.get("type")
        if kind == "json_invalid":
            where, msg = "body", "the request body is not valid JSON"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif kind == "missing":
            msg = "this field is required"
        elif kind in ("model_attributes_type", "dict_type", "model_type") and not loc:
            where, msg = "body", "the request body must be a JSON object"
        part = f"{where}: {msg}" if where else msg
        if part not in parts:
            parts.append(part)
            items.append({"field": where, "message": msg})
    return "; ".join(parts) or "invalid request", items


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], **fields: Any) -> M:
    """Validate ``fields`` against ``model``; InvalidQuery with a readable message when they do not fit."""
    try:
        return model(**fields)
    except ValidationError as e:
        raise InvalidQuery(readable(e.errors(include_input=False))[0]) from None
