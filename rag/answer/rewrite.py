"""Follow-up questions: turn the latest question of a chat into one that stands on its own.

Two ways, same result type (:class:`Rewrite`):

* :func:`rewrite_with_llm` asks the language model for the standalone question and, in the same
  reply, its Dutch translation (the articles are Dutch; retrieval then searches with both);
* :func:`rewrite_by_rule` works without a model: a short question, or one with a pronoun
  ("En hoe oud is zij?"), gets the key terms of the previous user question put in front
  ("dochter Kim Jong-un: En hoe oud is zij?").
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Sequence

from rag.errors import InvalidQuery
from rag.text import EXTRA_STOPWORDS, stopword_list
from rag.text import fold as _fold

# Words that point back into the conversation. Personal pronouns always do; demonstratives ("dat", "die",
# "this") do when they stand for a noun rather than introduce a clause; "zijn" only as a possessive.
PRONOUNS = frozenset(
    """zij hij ze hem haar hun hen she he it they them her his their its him""".split()
)
PRONOMINAL_ADVERBS = frozenset(
    """daar daarvan daarover daarmee daarna daardoor daarom daarbij daarvoor ervan erover ermee erna erdoor
    there thereafter""".split()
)
DEMONSTRATIVES = frozenset("""dat dit die deze het this that these those""".split())
QUESTION_WORDS = frozenset(
    """wie wat waar wanneer waarom hoe hoeveel welke welk waarmee waardoor waarvoor hoelang
    who what where when why how which whom whose""".split()
)
FOLLOWUP_OPENERS = ("en ", "maar ", "ook ", "and ", "but ", "also ", "what about ", "how about ", "wat dan ",
                    "wat nog ", "en wat ", "hoe zit het met ", "en verder")
MAX_HISTORY_MESSAGES = 8
MAX_MESSAGE_CHARS = 1200
MAX_CONTEXT_TERMS = 16  # key terms carried over from the previous question (a question has a handful)
DEFAULT_MAX_CHARS = 2000  # RAG_MAX_QUESTION_CHARS's default; the pipeline passes the setting

_WORD = re.compile(r"[^\W_][\w'’\-]*", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return (frozenset(stopword_list("dutch")) | frozenset(stopword_list("english")) | EXTRA_STOPWORDS | PRONOUNS
            | PRONOMINAL_ADVERBS | DEMONSTRATIVES | QUESTION_WORDS | {
                "noemde", "heette", "heet", "gebeurde", "oud", "old", "nu", "now", "dan", "then", "waren", "werd",
                "toen", "nog", "verder", "about"})


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
    """Does the question lean on the conversation? Only when it refers back (a pronoun, "daar", a
    demonstrative standing for a noun), opens with "En …"/"And …", or has no content word of its own
    ("Waarom?"). A question that stands on its own is never rewritten, whatever its length."""
    words = [_fold(w) for w in _WORD.findall(question)]
    if not words:
        return False
    q = _fold(" ".join(question.split())).lstrip(" ,.;:-–—'\"„“‘")
    if q.startswith(FOLLOWUP_OPENERS) or words[0] in ("en", "and", "maar", "but"):
        return True
    if not key_terms(question):
        return True
    for i, w in enumerate(words):
        prev = words[i - 1] if i else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w in PRONOUNS or w in PRONOMINAL_ADVERBS:
            return True
        if w == "zijn" and prev is not None and prev not in QUESTION_WORDS and nxt not in (None, "er", "de", "het", "een"):
            return True  # "Hoe oud is zijn dochter?" (not "Wat zijn de gevolgen?")
        if w in DEMONSTRATIVES and w != "het" and (nxt is None or i == 0 or
                                                     _is_verb_slot(prev)):
            return True  # "Hoeveel kost dat?", "Waarom gebeurde dat?", "Wat betekent die raket?"
        if w == "het" and nxt is None:
            return True  # "Wanneer gebeurde het?"
    return False


def _is_verb_slot(word: str | None) -> bool:
    """A word after which a demonstrative is a pronoun or points back ("is dat", "heeft die", "over dat")."""
    return word in {"is", "was", "waren", "zijn", "heeft", "had", "hebben", "kost", "kostte", "gebeurde", "betekent",
                    "betekende", "doet", "deed", "over", "met", "van", "voor", "door", "na", "bij", "is", "was",
                    "did", "does", "do", "about", "of", "after", "with", "mean", "means", "happen", "happened"}


def rewrite_by_rule(question: str, history: Sequence[dict], max_chars: int = DEFAULT_MAX_CHARS) -> Rewrite:
    """Prefix a dependent question with the key terms of the previous (itself resolved) user question.
    The result is never longer than ``max_chars`` (the question-length limit): at most
    ``MAX_CONTEXT_TERMS`` terms, cut to fit at a word, so a long earlier turn adds little."""
    previous: str | None = None
    for m in history:
        if m["role"] == "user":
            previous = _resolve(m["content"][:max_chars * 4], previous, max_chars)
    if previous is None or not needs_context(question):
        return Rewrite(standalone=question, method="none")
    standalone = _resolve(question, previous, max_chars)
    return Rewrite(standalone=standalone, method="rule" if standalone != question else "none")


def _resolve(question: str, previous: str | None, max_chars: int) -> str:
    if previous is None or not needs_context(question):
        return question[:max_chars]
    terms = _fit(" ".join(key_terms(previous).split()[:MAX_CONTEXT_TERMS]), max_chars - len(question) - 2)
    return f"{terms}: {question}" if terms and _fold(terms) not in _fold(question) else question[:max_chars]


def _fit(terms: str, room: int) -> str:
    """``terms`` cut to at most ``room`` characters, at a word."""
    if len(terms) <= room:
        return terms
    return terms[:max(room, 0) + 1].rsplit(" ", 1)[0] if room > 0 else ""


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


def parse_rewrite(reply: str, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, str | None] | None:
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
    if not isinstance(standalone, str) or not standalone.strip() or len(standalone) > max_chars:
        return None
    dutch = dutch.strip() if isinstance(dutch, str) and dutch.strip() and len(dutch) <= max_chars else None
    return " ".join(standalone.split()), (" ".join(dutch.split()) if dutch else None)


def rewrite_with_llm(llm, question: str, history: Sequence[dict], *, num_ctx: int | None = None,
                     max_tokens: int = 200, max_chars: int = DEFAULT_MAX_CHARS) -> Rewrite:
    """One chat call for the standalone question and its Dutch phrasing. LLM errors propagate;
    an unreadable reply falls back to :func:`rewrite_by_rule` (with a warning)."""
    reply = llm.chat(rewrite_messages(question, history), num_ctx=num_ctx, max_tokens=max_tokens)
    parsed = parse_rewrite(reply, max_chars)
    if parsed is None:
        fallback = rewrite_by_rule(question, history, max_chars)
        fallback.warnings.append("the model's rewrite of the question could not be read; used the simple rule")
        return fallback
    standalone, dutch = parsed
    return Rewrite(standalone=standalone, dutch=dutch, method="llm")
