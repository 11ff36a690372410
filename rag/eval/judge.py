"""The optional LLM judge of ``rag eval --judge``: does an answer follow from the passages it cites?"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rag.eval.qaset import QAItem

JUDGE_PROMPT = """You check whether an answer is supported by the passages it cites.

Question: {question}

Cited passages:
{passages}

Answer:
{answer}

How faithful is the answer to the cited passages? 5 = every statement is supported by them,
3 = partly supported, 1 = mostly unsupported or contradicted. Judge only support by the passages,
not whether the answer is complete. Reply with one line: SCORE: <1-5>"""

_SCORE_RE = re.compile(r"SCORE\s*[:=]?\s*([1-5])", re.I)


@dataclass
class LLMJudge:
    """Asks an LLM (``rag.llms.base.LLM``) to score faithfulness 1..5. Judges only answers a real LLM wrote
    (generator ``ollama``), not abstentions and not answers without citations."""

    llm: Any
    max_passage_chars: int = 1500
    judged_generators: tuple[str, ...] = ("ollama", "openai")
    calls: int = field(default=0, init=False)

    def __call__(self, item: QAItem, answer) -> dict | None:
        if answer.abstained or not answer.citations or answer.generator not in self.judged_generators:
            return None
        passages = "\n\n".join(f"[{c.n}] {' '.join(c.text.split())[: self.max_passage_chars]}" for c in answer.citations)
        prompt = JUDGE_PROMPT.format(question=item.question, passages=passages, answer=answer.answer)
        self.calls += 1
        raw = self.llm.chat([{"role": "user", "content": prompt}])
        m = _SCORE_RE.search(raw) or re.search(r"\b([1-5])\b", raw)
        if not m:
            return {"raw": raw[:200], "error": "no score in the reply"}
        return {"score": int(m.group(1)), "raw": raw[:200]}
