"""What the language model reads: passages built from the sentences that answer, not whole chunks.

On a CPU the wait before a local model's first word is mostly the model reading its prompt. Five
whole 200-token chunks (which overlap each other by 40 tokens) cost ~1,100-1,400 prompt tokens; the
sentences the ranking already scores (``rag.answer.extractive.ExtractiveAnswerer.rank``) say the same
in a fraction of that. :func:`select_passages`:

1. leaves out passages the decide step finds unrelated: a hit whose best sentence scores below
   ``related`` times the best sentence of all (``RELATED_SHARE``);
2. takes the best-ranked sentences, each with ``before`` sentences before it and ``after`` after it
   (a sentence that starts "Daar belandde ze ..." reads well only with the one before), until
   ``budget`` tokens of passage text are used (the best sentence always comes in); headings are left
   out (the passage's title names the article). When no sentence stands out (:func:`budget_for`), the
   budget is ``FLAT_FACTOR`` times larger: the ranking is unsure, so the model reads about what whole
   chunks would give it;
3. merges what it took from one article into one passage wherever the spans touch or overlap, also
   across neighbouring chunks of that article (chunks overlap by design);
4. returns them as :class:`~rag.schema.Hit` objects, best first, whose chunk is the exact span of the
   article: ``document.text[start:end] == chunk.text`` holds, so citations still resolve.

``budget=None`` gives the hits as they are: whole chunks (the prompt before this module).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from rag.ingest.chunking import sentence_spans
from rag.schema import Hit

RELATED_SHARE = 0.5  # a hit whose best sentence scores below this share of the best one is left out
BEFORE, AFTER = 1, 1  # neighbouring sentences kept around a chosen one (when the budget allows)
# When the best sentence leads the next by less than this share of its score (the decide step's gap: the
# ranking is unsure which sentence answers), the model reads FLAT_FACTOR times the budget: about as much
# as the chunks whole.
FLAT_GAP = 0.08
FLAT_FACTOR = 4.0


def budget_for(base: int | None, gap: float | None) -> int | None:
    """The budget for one question: ``base``, or ``FLAT_FACTOR`` times it when no sentence stands out
    (``gap``: how far the best sentence leads the next, as a share of its score; None with one sentence)."""
    if base is None:
        return None
    return round(base * FLAT_FACTOR) if gap is not None and gap < FLAT_GAP else base


class _Article:
    """One article's text by document offset: the whole text when the store gives it, else pieced
    together from the chunks the hits hold."""

    def __init__(self, full: str | None = None) -> None:
        self.full = full
        self.pieces: list[tuple[int, int, str, Hit]] = []  # (start, end, text, hit), by start

    def add(self, hit: Hit) -> None:
        c = hit.chunk
        self.pieces.append((c.start, c.end, c.text, hit))
        self.pieces.sort(key=lambda p: p[0])

    def text(self, start: int, end: int) -> str | None:
        """``document.text[start:end]`` when known (the chunks cover all of it), else None."""
        if self.full is not None:
            return self.full[start:end] if 0 <= start <= end <= len(self.full) else None
        out, pos = [], start
        for s, e, text, _ in self.pieces:
            if s <= pos < e:
                take = min(e, end)
                out.append(text[pos - s:take - s])
                pos = take
                if pos >= end:
                    return "".join(out)
        return None if pos < end else "".join(out)

    def hit_at(self, pos: int) -> Hit:
        return min(self.pieces, key=lambda p: (not p[0] <= pos < p[1], abs(p[0] - pos)))[3]

    def units(self, hit: Hit) -> list[tuple[int, int]]:
        """Sentence spans (document offsets; the finer split the ranking uses) of the hit's chunk, or of
        the whole article when its text is known (then neighbours may lie outside the chunk)."""
        if self.full is not None:
            return _spans(self.full, 0)
        return _spans(hit.chunk.text, hit.chunk.start)


def _spans(text: str, offset: int) -> list[tuple[int, int]]:
    """Sentence spans, headings left out (the passage's title says which article it is)."""
    return [(offset + s, offset + e) for s, e in sentence_spans(text, keep_quotes=False)
            if text[s:e].strip() and not _heading(text[s:e])]


def _heading(sentence: str) -> bool:
    """A heading line: "# Title", or a short line of its own without closing punctuation ("Bevoorrecht")."""
    s = sentence.strip()
    return s.startswith("#") or (len(s.split()) < 6 and "\n" not in s and not s.endswith((".", "!", "?", "”", "\"", "’", ":")))


def select_passages(hits: Sequence[Hit], ranked: Sequence, *, budget: int | None,
                    count_tokens: Callable[[str], int], related: float = RELATED_SHARE,
                    before: int = BEFORE, after: int = AFTER,
                    document_text: Callable[[str], str | None] | None = None) -> list[Hit]:
    """The passages to give the model (see the module doc). ``ranked``: ScoredSentence objects, best
    first (``n`` is the 1-based position of the sentence's hit in ``hits``). ``document_text(doc_id)``: the
    article's whole text, when the store can give it (neighbours across chunk boundaries)."""
    if budget is None or not hits or not ranked:
        return list(hits)
    best_of: dict[int, float] = {}
    for s in ranked:
        best_of.setdefault(s.n, s.score)
    top = ranked[0].score
    kept = {n for n, score in best_of.items() if top <= 0 or score >= related * top}

    articles: dict[str, _Article] = {}
    for n, hit in enumerate(hits, start=1):
        if n in kept:
            doc = hit.chunk.doc_id
            if doc not in articles:
                articles[doc] = _Article(_checked_text(document_text, hit))
            articles[doc].add(hit)
    units = {n: articles[hits[n - 1].chunk.doc_id].units(hits[n - 1]) for n in kept}

    chosen: dict[str, set[tuple[int, int]]] = {}  # doc_id -> sentence spans taken
    order: dict[tuple[str, int], int] = {}  # (doc_id, start of a taken sentence) -> rank of its reason
    used = 0
    for rank, s in enumerate(ranked):
        if s.n not in kept:
            continue
        doc = s.hit.chunk.doc_id
        spans = units[s.n]
        i = next((j for j, (a, b) in enumerate(spans) if a <= s.start < b), None)
        if i is None:
            continue
        wanted = spans[max(0, i - before):i + after + 1]
        taken = chosen.setdefault(doc, set())
        new = [sp for sp in wanted if sp not in taken and not any(a <= sp[0] < b for a, b in taken)]
        if not new:
            continue
        # the sentence itself first: its neighbours only when they fit too
        core = [sp for sp in new if sp[0] <= s.start < sp[1]]
        extra = [sp for sp in new if sp not in core]
        cost = sum(count_tokens(articles[doc].text(a, b) or "") for a, b in core)
        if used and used + cost > budget:
            continue
        for sp in core:
            taken.add(sp)
            order.setdefault((doc, sp[0]), rank)
        used += cost
        for sp in extra:
            c = count_tokens(articles[doc].text(*sp) or "")
            if used + c <= budget:
                taken.add(sp)
                order.setdefault((doc, sp[0]), rank)
                used += c
        if used >= budget:
            break

    passages: list[tuple[int, Hit]] = []
    for doc, spans in chosen.items():
        article = articles[doc]
        for run in _runs(sorted(spans), article):
            start, end = run[0][0], run[-1][1]
            text = article.text(start, end)
            if text is None:
                continue
            first = min(order[(doc, a)] for a, _ in run)
            passages.append((first, _passage_hit(article.hit_at(start), start, end, text)))
    passages.sort(key=lambda p: p[0])
    return [replace(h, rank=i) for i, (_, h) in enumerate(passages, start=1)]


def _checked_text(document_text: Callable[[str], str | None] | None, hit: Hit) -> str | None:
    """The article's text, only when it agrees with the hit (an index being replaced may disagree)."""
    if document_text is None:
        return None
    try:
        text = document_text(hit.chunk.doc_id)
    except Exception:  # a store that cannot give it now: the chunks will do
        return None
    c = hit.chunk
    return text if text is not None and text[c.start:c.end] == c.text else None


def _runs(spans: list[tuple[int, int]], article: _Article) -> list[list[tuple[int, int]]]:
    """Spans that touch (only white space between them, in text the chunks hold) joined into runs."""
    runs: list[list[tuple[int, int]]] = []
    for sp in spans:
        if runs:
            last_end = runs[-1][-1][1]
            gap = article.text(last_end, sp[0]) if sp[0] >= last_end else ""
            if gap is not None and not gap.strip():
                runs[-1].append(sp)
                continue
        runs.append([sp])
    return runs


def _passage_hit(source: Hit, start: int, end: int, text: str) -> Hit:
    return replace(source, chunk=replace(source.chunk, text=text, start=start, end=end))
