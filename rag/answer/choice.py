"""Which generator answers: the one place that decides whether an ask calls the LLM.

``choose_generator`` reads the LLM adapter's status (the adapter caches it, thread-safely, for a
few seconds: that is the only status cache). The API decides once per request, takes an LLM slot
when the LLM will be called, and pins the decision on the pipeline (``Pipeline.with_choice``) so
the pipeline cannot decide differently a moment later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rag.contract import LLM_GENERATORS
from rag.errors import InvalidQuery, LLMUnavailable


@dataclass(frozen=True)
class Choice:
    use_llm: bool
    why_not: str | None = None  # for "auto": why the extractive generator answers


def choose_generator(llm: Any, generator: str) -> Choice:
    """``extractive``: no LLM. ``ollama`` / ``openai``: that LLM backend (LLMUnavailable when none is
    configured; InvalidQuery, a request this server cannot serve, when another one is). ``auto``: the LLM when its status says it answers and has the model."""
    if generator == "extractive":
        return Choice(False)
    if generator in LLM_GENERATORS:
        if llm is None:
            raise LLMUnavailable(f"no language model is configured (generator '{generator}')")
        name = getattr(llm, "name", generator)
        if name != generator:
            raise InvalidQuery(f"generator '{generator}' was asked for, but this server's language model is "
                               f"'{name}': ask for '{name}', 'auto' or 'extractive' (or set RAG_GENERATOR={generator})")
        return Choice(True)
    if llm is None:
        return Choice(False, "no language model is configured")
    try:
        st = llm.status()
    except Exception as e:  # status() should not raise; be safe
        return Choice(False, f"the language model's status could not be read ({e})")
    return Choice(True) if st.ok else Choice(False, st.detail)
