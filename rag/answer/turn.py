"""One question on its way through the steps (``Turn``), the events a stream yields, and the few
sentences the pipeline writes itself, in the question's language."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from rag.answer.decide import Decision
from rag.answer.extractive import ScoredSentence
from rag.answer.rewrite import Rewrite
from rag.schema import Hit

BROKEN_SEPARATOR = {
    "nl": "\n\n(Het antwoord van het taalmodel brak af. Uit de artikelen:)\n",
    "en": "\n\n(The language model's answer broke off. From the articles:)\n",
}
UNCERTAIN_LEAD = {
    "nl": "Ik vond geen zin die dit precies beantwoordt; dit komt het dichtst in de buurt:",
    "en": "I found no sentence that answers this exactly; this is the closest:",
}


def lead(table: dict[str, str], lang: str) -> str:
    return table.get(lang, table["nl"])


@dataclass
class StreamEvent:
    kind: Literal["sources", "token", "done"]
    data: Any  # sources: list[Hit]; token: str; done: Answer


@dataclass
class Turn:
    """One question on its way through the steps: what each step found, for the next ones."""
    question: str
    lang: str
    generator: str
    history: list[dict]
    streaming: bool
    use_llm: bool = False
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rewrite: Rewrite | None = None
    hits: list[Hit] = field(default_factory=list)
    ranked: list[ScoredSentence] = field(default_factory=list)
    decision: Decision | None = None
    started: float = 0.0  # when generation started (perf_counter)

    @property
    def queries(self) -> list[str]:
        return self.rewrite.queries if self.rewrite else [self.question]

    @property
    def standalone(self) -> str | None:
        rw = self.rewrite
        return rw.standalone if rw and (self.history or rw.standalone != self.question) else None

    @property
    def relevance(self) -> float | None:
        return self.decision.evidence.score if self.decision else None




def pieces(text: str, n: int = 4) -> list[str]:
    """Split an extractive answer into a few stream pieces (at word boundaries)."""
    words = re.findall(r"\S+\s*", text)
    if not words:
        return [text] if text else []
    size = max(1, -(-len(words) // n))
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)]
