"""Token estimates for prompts to a language model (the prompt budget of rag.answer.prompt)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["count_message_tokens", "count_tokens"]

_WORD = re.compile(r"\S+")
_DIGIT = re.compile(r"\d")


def count_tokens(text: str) -> int:
    """Approximate token count of ``text`` -- deliberately an OVER-estimate.

    There is no tokenizer for the Ollama model available locally, so prompt
    budgets use this estimate: ``max(chars / 3, words * 1.6)``, where every
    digit counts as a whole token (Qwen2 tokenizes numbers digit by digit).
    BPE tokenizers of current models average ~3.5-4.5 characters and ~1.2-1.5
    tokens per word on English and Dutch prose, so the estimate is higher than
    the real count for ordinary text and a prompt budgeted with it stays under
    ``num_ctx``.
    """
    if not text:
        return 0
    digits = len(_DIGIT.findall(text))
    by_chars = (len(text) - digits) / 3.0 + digits
    by_words = len(_WORD.findall(text)) * 1.6
    return math.ceil(max(by_chars, by_words))


# per-message chat-template overhead (``<|im_start|>role\n ... <|im_end|>\n``),
# plus the assistant header the template appends
_MESSAGE_OVERHEAD = 6
_REPLY_PRIMER = 3


def count_message_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Over-estimate of the prompt tokens of a chat (contents plus template overhead)."""
    return _REPLY_PRIMER + sum(count_tokens(str(m.get("content") or "")) + _MESSAGE_OVERHEAD for m in messages)
