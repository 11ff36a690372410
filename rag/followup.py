"""Follow-up questions: turn the latest question of a chat into one that stands on its own.

Two ways, same result type (:class:`Rewrite`):

* :func:`rewrite_with_llm` asks the language model for the standalone question and, in the same
  reply, its Dutch translation (the articles are Dutch; retrieval then searches with both);
* :func:`rewrite_by_rule` works without a model: a short question, or one with a pronoun
  ("En hoe oud is zij?"), gets the key terms of the previous user question put in front
  ("dochter Kim Jong-un: En hoe oud is zij?").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Sequence

from .errors import InvalidQuery
from .text import EXTRA_STOPWORDS, stopword_list
from .text import fold as _fold

PRONOUNS = frozenset(
    """zij hij het ze die dat deze dit hem haar hun hen zijn daar daarvan daarover daarmee er ervan erover
    she he it they them her his their its this that these those there him""".split()
)
FOLLOWUP_OPENERS = ("en ", "maar ", "ook ", "and ", "but ", "also ", "what about ", "en wat ", "wat dan ")
SHORT_QUESTION_WORDS = 5  # a question this short probably leans on the previous one
MAX_HISTORY_MESSAGES = 8
MAX_MESSAGE_CHARS = 1200

_WORD = re.compile(r"[^\W_][\w'’\-]*", re.UNICODE)


def _stopwords() -> frozenset[str]:
    return frozenset(stopword_list("dutch")) | frozenset(stopword_list("english")) | EXTRA_STOPWORDS | PRONOUNS | {
        "noemde", "heette", "heet", "gebeurde", "oud", "old", "nu", "now", "dan", "then", "waren", "werd"}


@dataclass
class Rewrite:
    standalone: str  # the question as it should be understood on its own, in its own language
    dutch: str | None = None  # its Dutch phrasing, when the question is in another language
    method: str = "none"  # "none" | "rule" | "llm"
    warnings: list[str] = field(default_factory=list)

    @property
    def queries(self) -> list[str]:
        """What to search with: the standalone question, plus its Dutch phrasing when different."""
        out = [self.standalone]
        if self.dutch and _fold(self.dutch).strip() != _fold(self.standalone).strip():
            out.append(self.dutch)
        return out


def check_history(history) -> list[dict]:
    """The chat history as a clean list of {"role", "content"}; InvalidQuery when malformed."""
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise InvalidQuery("history must be a list of {\"role\": \"user\"|\"assistant\", \"content\": str} objects")
    clean = []
    for i, m in enumerate(history):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
            raise InvalidQuery(f"history[{i}] must be {{\"role\": \"user\"|\"assistant\", \"content\": str}}")
        if m["content"].strip():
            clean.append({"role": m["role"], "content": m["content"].strip()})
    return clean


# ----------------------------------------------------------------------------- the rule

def key_terms(question: str) -> str:
    """The content words of a question, in order, as written ("Wie is de dochter van Kim Jong-un?"
    -> "dochter Kim Jong-un")."""
    stop = _stopwords()
    words = [w for w in _WORD.findall(question) if _fold(w) not in stop and (len(w) > 1 or w.isdigit())]
    return " ".join(words)


def needs_context(question: str) -> bool:
    words = [_fold(w) for w in _WORD.findall(question)]
    if not words:
        return False
    if len(words) <= SHORT_QUESTION_WORDS:
        return True
    q = _fold(question).lstrip()
    return q.startswith(FOLLOWUP_OPENERS) or any(w in PRONOUNS for w in words)


def rewrite_by_rule(question: str, history: Sequence[dict]) -> Rewrite:
    """Prefix a dependent question with the key terms of the previous (itself resolved) user question."""
    previous: str | None = None
    for m in history:
        if m["role"] == "user":
            previous = _resolve(m["content"], previous)
    if previous is None or not needs_context(question):
        return Rewrite(standalone=question, method="none")
    terms = key_terms(previous)
    if not terms or _fold(terms) in _fold(question):
        return Rewrite(standalone=question, method="none")
    return Rewrite(standalone=f"{terms}: {question}", method="rule")


def _resolve(question: str, previous: str | None) -> str:
    if previous is None or not needs_context(question):
        return question
    terms = key_terms(previous)
    return f"{terms}: {question}" if terms and _fold(terms) not in _fold(question) else question


# ----------------------------------------------------------------------------- with the model

REWRITE_SYSTEM = """\
You prepare questions for a search engine over Dutch news articles.
Given a conversation and the user's latest question:
1. "standalone": rewrite the latest question so that it can be understood without the conversation: replace pronouns and references ("she", "that", "zij", "die") with what they refer to. Keep its language and meaning; do not answer it. If it already stands on its own, repeat it unchanged.
2. "dutch": the standalone question translated into Dutch (repeat it if it is already Dutch).
Reply with only a JSON object: {"standalone": "...", "dutch": "..."}"""


def rewrite_messages(question: str, history: Sequence[dict]) -> list[dict]:
    lines = []
    for m in list(history)[-MAX_HISTORY_MESSAGES:]:
        content = " ".join(m["content"].split())
        if len(content) > MAX_MESSAGE_CHARS:
            content = content[:MAX_MESSAGE_CHARS] + " …"
        lines.append(f"{m['role']}: {content}")
    convo = "\n".join(lines) if lines else "(no earlier messages)"
    user = f"Conversation:\n{convo}\n\nLatest question: {question}"
    return [{"role": "system", "content": REWRITE_SYSTEM}, {"role": "user", "content": user}]


_JSON_OBJ = re.compile(r"\{.*\}", re.DOTALL)


def parse_rewrite(reply: str) -> tuple[str, str | None] | None:
    """(standalone, dutch) from the model's reply, or None when it can't be read."""
    m = _JSON_OBJ.search(reply or "")
    if not m:
        return None
    try:
        data = json.loads(m.group(0))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    standalone = data.get("standalone")
    dutch = data.get("dutch")
    if not isinstance(standalone, str) or not standalone.strip() or len(standalone) > 2000:
        return None
    dutch = dutch.strip() if isinstance(dutch, str) and dutch.strip() and len(dutch) <= 2000 else None
    return " ".join(standalone.split()), (" ".join(dutch.split()) if dutch else None)


def rewrite_with_llm(llm, question: str, history: Sequence[dict], *, num_ctx: int | None = None,
                     max_tokens: int = 200) -> Rewrite:
    """One chat call for the standalone question and its Dutch phrasing. LLM errors propagate;
    an unreadable reply falls back to :func:`rewrite_by_rule` (with a warning)."""
    reply = llm.chat(rewrite_messages(question, history), num_ctx=num_ctx, max_tokens=max_tokens)
    parsed = parse_rewrite(reply)
    if parsed is None:
        fallback = rewrite_by_rule(question, history)
        fallback.warnings.append("the model's rewrite of the question could not be read; used the simple rule")
        return fallback
    standalone, dutch = parsed
    return Rewrite(standalone=standalone, dutch=dutch, method="llm")
