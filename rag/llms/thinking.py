"""Thinking models: the setting (``RAG_THINK``) and keeping their trace out of the answer.

Thinking models (qwen3, deepseek-r1, gpt-oss ...) think before they answer. Servers hand the
trace over in one of three ways, and none of it may reach the answer, the citation check or the
SSE ``token`` events:

* Ollama puts it in ``message.thinking`` (the adapters simply ignore that field);
* OpenAI-compatible servers (llama-server, vLLM) put it in ``delta.reasoning_content``
  (or ``reasoning``): ignored the same way;
* older servers and plain chat templates leave ``<think>...</think>`` in the content:
  :class:`ThinkStripper` removes those blocks from a stream, also when a tag is cut across two
  pieces, and :func:`strip_thinking` from a whole text.

``think_value`` turns the setting into what is sent: ``False`` (the default: do not think, for
answers and rewrites), ``True``, or a level ``"low" | "medium" | "high"``.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["THINK_LEVELS", "ThinkSetting", "ThinkStripper", "strip_thinking", "think_value"]

ThinkSetting = Literal["false", "true", "low", "medium", "high"]
THINK_LEVELS = ("low", "medium", "high")

OPEN, CLOSE = "<think>", "</think>"
_BLOCK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S)


def think_value(setting: str | bool | None) -> bool | str:
    """``RAG_THINK`` as sent to the server: False, True or a level."""
    if setting is None or setting is False:
        return False
    if setting is True:
        return True
    text = str(setting).strip().lower()
    if text in ("", "false", "0", "no", "off"):
        return False
    if text in ("true", "1", "yes", "on"):
        return True
    if text in THINK_LEVELS:
        return text
    raise ValueError(f"RAG_THINK must be false, true, low, medium or high, got {setting!r}")


def strip_thinking(text: str) -> str:
    """A whole answer without its ``<think>`` blocks. An unclosed block runs to the end; a lone
    ``</think>`` (the template opened the block in the prompt) drops everything before it."""
    if CLOSE in text and OPEN not in text.split(CLOSE, 1)[0]:
        text = text.split(CLOSE, 1)[1]
    return _BLOCK.sub("", text).lstrip() if OPEN in text or CLOSE in text else text


class ThinkStripper:
    """Feed the pieces of a stream; get back only what is outside ``<think>`` blocks.

    A piece that ends in what may be the start of a tag (``"<thi"``) is held back until the next
    piece decides; :meth:`flush` at the end returns what is still held (never trace text).
    ``thinking`` is True while inside a block (for a "thinking..." hint)."""

    def __init__(self) -> None:
        self._held = ""
        self.thinking = False
        self._started = False  # visible text sent yet
        self._after_block = False  # a block closed before any visible text: drop the whitespace after it

    def feed(self, piece: str) -> str:
        text, self._held = self._held + piece, ""
        out: list[str] = []
        while text:
            tag = CLOSE if self.thinking else OPEN
            i = text.find(tag)
            if i >= 0:
                if not self.thinking:
                    out.append(text[:i])
                text = text[i + len(tag):]
                if self.thinking and not self._started and not "".join(out).strip():
                    self._after_block = True
                self.thinking = not self.thinking
                continue
            keep = _partial_tag(text, tag)
            if not self.thinking:
                out.append(text[:len(text) - keep])
            self._held = text[len(text) - keep:] if keep else ""
            break
        return self._visible("".join(out))

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.thinking else self._visible(held)

    def _visible(self, text: str) -> str:
        if not self._started and self._after_block:
            text = text.lstrip()
        self._started = self._started or bool(text.strip())
        return text


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
