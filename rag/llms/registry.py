"""The one place a language-model backend is chosen by name: a small registry.

=========  ==============================  ==========================================
name       adapter                         where it talks
=========  ==============================  ==========================================
``ollama``  ``rag.llms.ollama.OllamaLLM``          Ollama's native API (``OLLAMA_HOST``)
``openai``  ``rag.llms.openai.OpenAILLM``   any OpenAI-compatible server (``RAG_OPENAI_BASE_URL``)
=========  ==============================  ==========================================

``RAG_GENERATOR=ollama|openai`` names the backend (and always answers with it); ``auto`` uses
``openai`` when ``RAG_OPENAI_BASE_URL`` is set, else ``ollama`` -- and answers extractively when
that backend's status says it cannot (``rag.answer.choice``); ``extractive`` uses none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rag.contract import LLM_GENERATORS

__all__ = ["BACKENDS", "backend_label", "backend_name", "make_llm", "server_url"]


def _ollama(settings: Any):
    from rag.llms.ollama import OllamaLLM

    return OllamaLLM.from_settings(settings)


def _openai(settings: Any):
    from rag.llms.openai import OpenAILLM

    return OpenAILLM.from_settings(settings)


BACKENDS: dict[str, Callable[[Any], Any]] = {"ollama": _ollama, "openai": _openai}
LABELS = {"ollama": "Ollama", "openai": "OpenAI-compatible server"}
assert set(BACKENDS) == set(LLM_GENERATORS)


def backend_name(settings: Any, generator: str | None = None) -> str:
    """The backend for ``generator`` (default ``settings.generator``); ``auto``/``extractive`` -> the configured one."""
    generator = generator or settings.generator
    if generator in BACKENDS:
        return generator
    return "openai" if getattr(settings, "openai_base_url", None) else "ollama"


def make_llm(settings: Any, generator: str | None = None):
    """The adapter for ``generator`` (default ``settings.generator``); None for ``extractive``."""
    if (generator or settings.generator) == "extractive":
        return None
    return BACKENDS[backend_name(settings, generator)](settings)


def server_url(settings: Any, name: str | None = None) -> str:
    """Where backend ``name`` (default: the configured one) is reached."""
    name = name or backend_name(settings)
    if name == "openai":
        from rag.llms.openai import DEFAULT_BASE_URL

        return settings.openai_base_url or DEFAULT_BASE_URL
    return settings.ollama_host


def backend_label(name: str) -> str:
    return LABELS.get(name, name)
