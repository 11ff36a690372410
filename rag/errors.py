"""The project's error hierarchy.

Adapters translate library exceptions into these; the CLI and the API map them
to messages and status codes in one place each (``cli.py``, ``api/app.py``).
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: every error the user should see as a message, not a traceback.

    ``code``, when set, is a stable word for the kind of error (``"too_large"``): the API sends it
    beside the message, so a client (the chat page) can say it in its own language."""

    code: str | None = None


class ConfigError(RagError):
    """A setting has a value that cannot work."""


class IndexNotFound(RagError):
    """There is no index at the configured place."""


class IndexCorrupt(RagError):
    """The index on disk cannot be read (wrong format version, missing files)."""


class StoreUnavailable(RagError):
    """The shared store (PostgreSQL) does not answer; the API maps this to 503."""


class IndexBusy(RagError):
    """Another indexer is writing the shared store right now (and we were told not to wait)."""


class BuildCancelled(RagError):
    """A build was stopped half-way (the server is shutting down); the index was left as it was."""


class EmbeddingModelMismatch(RagError):
    """The index was built with another embedding model than the one loaded now."""


class EmbeddingModelUnavailable(RagError):
    """No embedding model could be loaded (not even the offline fallback)."""


class InvalidQuery(RagError):
    """A question or search parameter is not acceptable (empty, too long, bad mode)."""


class DocumentNotFound(RagError):
    """No document with that id is indexed."""


class AdminActionsOff(RagError):
    """Admin actions over HTTP (re-index, add, remove) are off: no RAG_API_KEY is configured (403)."""

    code = "uploads_off"


class ApiKeyRequired(RagError):
    """An admin action without the right API key (401)."""

    code = "api_key_required"


class LLMError(RagError):
    """Base for everything that goes wrong talking to the language model."""


class LLMUnavailable(LLMError):
    """The LLM server does not answer (not running, refused, unreachable)."""


class LLMModelNotFound(LLMError):
    """The server answers but does not have the model (``ollama pull`` it)."""


class LLMTimeout(LLMError):
    """The LLM did not answer within the configured time."""


class LLMStreamBroken(LLMError):
    """The answer stream stopped half-way."""


class EvalSetError(RagError):
    """A line of the reference Q&A set is malformed (the message names the line)."""
