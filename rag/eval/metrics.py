"""Metrics of one question: retrieval (relevance of passages to evidence phrases, hit@k, recall@k,
reciprocal rank, the hit@k curve) and answers (token F1, first statement, citation texts).
``rag.eval.evaluation`` averages them over the set; the definitions are in its docstring."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from typing import Any, Sequence

CURVE_DEPTH = 10  # the hit@k curve and MRR look at the top 10


# ============================================================================ retrieval metrics

def fold(text: str) -> str:
    """Case and white-space folding used to match evidence phrases."""
    return " ".join(text.split()).casefold()


def evidence_in(text: str, evidence: Sequence[str]) -> frozenset[int]:
    """Indices of the evidence phrases that ``text`` contains."""
    t = fold(text)
    return frozenset(i for i, ph in enumerate(evidence) if fold(ph) and fold(ph) in t)


def relevance(texts: Sequence[str], evidence: Sequence[str]) -> list[frozenset[int]]:
    """For a ranked list of passages: which evidence phrases each one holds."""
    return [evidence_in(t, evidence) for t in texts]


def first_relevant_rank(matches: Sequence[frozenset[int]]) -> int | None:
    """1-based rank of the first passage holding any evidence phrase, or None."""
    return next((r for r, m in enumerate(matches, 1) if m), None)


def hit_at_k(matches: Sequence[frozenset[int]], k: int) -> float:
    return 1.0 if any(matches[:k]) else 0.0


def recall_at_k(matches: Sequence[frozenset[int]], n_evidence: int, k: int) -> float:
    if n_evidence <= 0:
        return 0.0
    found = set().union(*matches[:k]) if matches[:k] else set()
    return len(found) / n_evidence


def reciprocal_rank(matches: Sequence[frozenset[int]], depth: int = CURVE_DEPTH) -> float:
    r = first_relevant_rank(matches[:depth])
    return 1.0 / r if r else 0.0


def retrieval_metrics(per_q: Sequence[tuple[Sequence[frozenset[int]], int]], k: int) -> dict[str, float | None]:
    """Means over questions of hit@1, hit@k, recall@k, mrr@10; ``per_q`` holds (matches, n_evidence)."""
    if not per_q:
        return {"hit@1": None, f"hit@{k}": None, f"recall@{k}": None, f"mrr@{CURVE_DEPTH}": None}
    n = len(per_q)
    return {
        "hit@1": sum(hit_at_k(m, 1) for m, _ in per_q) / n,
        f"hit@{k}": sum(hit_at_k(m, k) for m, _ in per_q) / n,
        f"recall@{k}": sum(recall_at_k(m, ne, k) for m, ne in per_q) / n,
        f"mrr@{CURVE_DEPTH}": sum(reciprocal_rank(m) for m, _ in per_q) / n,
    }


def hit_curve(per_q: Sequence[tuple[Sequence[frozenset[int]], int]], depth: int = CURVE_DEPTH) -> list[float | None]:
    """hit@k for k = 1..depth."""
    if not per_q:
        return [None] * depth
    return [sum(hit_at_k(m, k) for m, _ in per_q) / len(per_q) for k in range(1, depth + 1)]


# ============================================================================ answer metrics

ARTICLES = {"a", "an", "the", "de", "het", "een", "'t"}
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation, for Dutch and English: lower case, drop punctuation and articles, squeeze spaces."""
    text = text.lower()
    text = " ".join(w for w in text.split() if w not in ARTICLES)  # before punctuation: catches "'t"
    text = "".join(ch for ch in text if ch not in _PUNCT and not unicodedata.category(ch).startswith("P"))
    return " ".join(w for w in text.split() if w not in ARTICLES)


def token_f1(prediction: str, reference: str) -> float:
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


_MARKER_RE = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def first_statement(answer: str) -> str:
    """The answer up to its first citation marker (for an extractive answer: its first quoted excerpt),
    without a lead line ("… dit komt het dichtst in de buurt:") and the excerpt's "> " mark."""
    m = _MARKER_RE.search(answer or "")
    head = answer[:m.start()] if m else (answer or "")
    head = head.strip().rsplit("\n", 1)[-1].strip()
    if head.startswith(">"):
        head = head[1:].lstrip().lstrip("…")
    return head.strip().strip("„“”\"‚‘’«»").strip()


def first_statement_has_evidence(answer: str, evidence: Sequence[str]) -> bool:
    head = fold(first_statement(answer))
    if not head:
        return False
    return any(fold(e) in head or (len(head) >= 20 and head in fold(e)) for e in evidence)


def strip_citation_markers(text: str) -> str:
    """Remove ``[1]`` / ``[1, 2]`` markers, which are not part of what the answer says."""
    return _MARKER_RE.sub("", text)


def _citation_texts(answer) -> list[tuple[Any, str]]:
    """(citation, passage text) pairs; a citation's passage is looked up among the sources by chunk id
    (the citation's own text may be a shorter span)."""
    by_chunk = {h.chunk.chunk_id: h.chunk.text for h in getattr(answer, "sources", []) or []}
    pairs = []
    for c in answer.citations:
        text = c.text or ""
        full = by_chunk.get(getattr(c, "chunk_id", "") or "")
        if full and text not in full:
            text = text + "\n" + full
        elif full:
            text = full
        pairs.append((c, text))
    return pairs
