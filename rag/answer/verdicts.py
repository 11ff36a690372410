"""The verdicts of the sentence check (``rag.answer.verify``): one :class:`Verdict` per sentence of an
answer, and the :class:`Verification` of the whole answer (with its degenerate-output flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.answer.check import short
from rag.answer.degenerate import Flag


@dataclass
class Verdict:
    sentence: str  # as in the answer, citations included
    start: int  # offsets in the answer text
    end: int
    verdict: str  # supported | unsupported | off_question
    reason: str
    citations: list[int] = field(default_factory=list)
    support: dict | None = None  # {"n", "doc_id", "start", "end", "text"}: the passage sentence
    similarity: float | None = None

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "start": self.start, "end": self.end, "verdict": self.verdict,
                "reason": self.reason, "citations": list(self.citations), "support": self.support,
                "similarity": None if self.similarity is None else round(float(self.similarity), 4)}


@dataclass
class Verification:
    verdicts: list[Verdict] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    answers_question: bool = False

    @property
    def supported(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == "supported"]

    @property
    def true_to_passages(self) -> list[Verdict]:
        """Sentences the cited passage says, whether or not they answer the question."""
        return [v for v in self.verdicts if v.verdict in ("supported", "off_question")]

    @property
    def support(self) -> str:
        ok = self.verdicts and all(v.verdict == "supported" for v in self.verdicts)
        return "answered" if ok and self.answers_question and not self.flags else "uncertain"

    def shift(self, by: int) -> None:
        """Text was put in front of the answer: move the sentences' offsets along."""
        for v in self.verdicts:
            v.start += by
            v.end += by

    def reasons(self) -> list[str]:
        """Why the answer is not plainly answered, one line each (for the warnings)."""
        out = [f.detail for f in self.flags]
        out += [f"\"{short(v.sentence, 70)}\": {v.reason}" for v in self.verdicts if v.verdict != "supported"]
        return out
