"""The reference Q&A set (``eval/qa.jsonl``): its format, and the one validator of it.

One JSON object per line::

    {"id": str, "question": str, "answer": str, "evidence": [str, ...], "answerable": bool, "lang": "nl"|"en"}

Other keys are allowed and ignored. Blank lines are skipped. A bad set raises ``EvalSetError``
naming every bad line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from rag.errors import EvalSetError

LANGS = ("nl", "en")
REQUIRED: dict[str, type] = {
    "id": str,
    "question": str,
    "answer": str,
    "evidence": list,
    "answerable": bool,
    "lang": str,
}


# ============================================================================ the set

@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answer: str
    evidence: tuple[str, ...]
    answerable: bool
    lang: str
    line: int = 0  # line number in the file (1-based)
    kind: str | None = None  # unanswerable questions: "off-topic" | "near-topic" (optional)


def parse_qa_lines(lines: Iterable[str], source: str = "<qa set>") -> list[QAItem]:
    """Parse the JSONL set; raise ``EvalSetError`` naming every bad line (not just the first)."""
    items: list[QAItem] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {lineno}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
            continue
        errs = []
        for key, typ in REQUIRED.items():
            if key not in obj:
                errs.append(f"missing field '{key}'")
            elif not isinstance(obj[key], typ) or (typ is not bool and isinstance(obj[key], bool)):
                errs.append(f"field '{key}' should be {_type_name(typ)}, got {_type_name(type(obj[key]))}")
        if not errs:
            if not obj["question"].strip():
                errs.append("field 'question' is empty")
            if obj["lang"] not in LANGS:
                errs.append(f"field 'lang' should be one of {', '.join(LANGS)}, got {obj['lang']!r}")
            bad_ev = [e for e in obj["evidence"] if not isinstance(e, str) or not e.strip()]
            if bad_ev:
                errs.append("field 'evidence' should hold non-empty strings")
            elif obj["answerable"] and not obj["evidence"]:
                errs.append("an answerable question needs at least one evidence phrase")
            if obj["id"] in seen:
                errs.append(f"id {obj['id']!r} already used on line {seen[obj['id']]}")
        if errs:
            qid = f" ({obj['id']})" if isinstance(obj.get("id"), str) else ""
            problems.append(f"line {lineno}{qid}: " + "; ".join(errs))
            continue
        seen[obj["id"]] = lineno
        items.append(QAItem(id=obj["id"], question=obj["question"], answer=obj["answer"],
                            evidence=tuple(obj["evidence"]), answerable=obj["answerable"], lang=obj["lang"],
                            line=lineno, kind=obj.get("kind") if isinstance(obj.get("kind"), str) else None))
    if problems:
        raise EvalSetError(f"{source}: {len(problems)} bad line(s):\n  " + "\n  ".join(problems))
    if not items:
        raise EvalSetError(f"{source}: no questions in the set")
    return items


def load_qa(path: Path | str) -> list[QAItem]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalSetError(f"the Q&A set '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EvalSetError(f"cannot read the Q&A set '{path}': {e}") from e
    return parse_qa_lines(text.splitlines(), source=str(path))


def _type_name(t: type) -> str:
    return {str: "a string", list: "a list", bool: "true/false", int: "a number", float: "a number",
            dict: "an object", type(None): "null"}.get(t, t.__name__)
