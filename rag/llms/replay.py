"""Recorded answers of a real model played back: a cassette (``eval/record_llm.py`` writes them) as an ``LLM``.

A cassette is JSON lines, one per question: ``{"id", "question", "model", "messages", "raw", ...}`` plus the
labels a person gave (``label``, ``sentences``: tests/data/llm/README.md). :class:`Cassette` finds the
record a prompt belongs to by the question it asks (the line ``Question: ...`` of the prompt, or a
rewrite request's ``Latest question: ...``); :class:`ReplayLLM` answers with that record's raw reply, in
pieces, as the model streamed it. ``rag eval --replay`` runs the pipeline with it, so the check sees
exactly what the model wrote, and tests/test_replay.py serves the same cassette over HTTP (the fake
OpenAI-compatible server) so the whole path is replayed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from rag.llms.base import LLMStatus

_QUESTION = re.compile(r"^(?:Question|Latest question): (.+)$", re.M)


def question_of(messages: list[dict]) -> str | None:
    """The question a chat request asks (the last one in its last message)."""
    found = _QUESTION.findall(str(messages[-1].get("content", ""))) if messages else []
    return found[-1].strip() if found else None


class Cassette:
    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.by_question = {r["question"].strip(): r for r in records}

    @classmethod
    def load(cls, path: str | Path) -> "Cassette":
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls([json.loads(line) for line in lines if line.strip()])

    @property
    def model(self) -> str:
        return next((r["model"] for r in self.records if r.get("model")), "replay")

    def reply(self, messages: list[dict]) -> str | None:
        """The recorded raw reply to this request, or None when the cassette has no such question."""
        record = self.by_question.get(question_of(messages) or "")
        return None if record is None else record.get("raw")


def split_pieces(text: str) -> list[str]:
    """Streamed the way a server sends tokens: a word (with its space) at a time."""
    return re.findall(r"\s*\S+|\s+$", text) or [text]


class ReplayLLM:
    """The ``LLM`` protocol over a cassette (in process: no server)."""

    name = "openai"

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette
        self.model = cassette.model
        self.missing: list[str] = []  # questions asked that the cassette does not hold

    def status(self, **_: Any) -> LLMStatus:
        return LLMStatus(True, True, self.model, f"replaying {len(self.cassette.records)} recorded answers")

    def _reply(self, messages: list[dict]) -> str:
        raw = self.cassette.reply(messages)
        if raw is None:
            self.missing.append(question_of(messages) or "?")
            return ""
        return raw

    def chat(self, messages: list[dict], **_: Any) -> str:
        return self._reply(messages)

    def stream_chat(self, messages: list[dict], **_: Any) -> Iterator[str]:
        return iter(split_pieces(self._reply(messages)))
