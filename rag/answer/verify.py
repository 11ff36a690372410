"""Check, sentence by sentence: does each sentence of an answer say what the passages it cites say, and
does the answer answer the question? For every generator: an LLM's answer and the extractive quotes.

No NLI model runs here, so the check is built from what is: the multilingual e5 model (which embeds Dutch
and English alike), the text, and the numbers and names in it (``rag.answer.facts``). Each sentence of
the answer (``rag.answer.check.sentence_units``; citations that open a sentence belong to the one before)
gets a :class:`Verdict`:

``unsupported``
    it cites no passage; or a number, month, amount, quotation or name in it is not in the passages it
    cites (numbers are compared as values, "vijftienduizend" = 15000; a number must be in the sentence
    that supports it or next to it); or the passage says it of someone else (the supporting sentence
    names other people and none of the answer's: "Park was born in 1999" against "In 1999 werd haar
    zoontje Chol geboren"); or no sentence of the cited passages is close to it in meaning (e5 cosine
    below ``MIN_SIMILARITY`` and fewer than ``MIN_OVERLAP`` of its content words there);
``off_question``
    supported, but no sentence of the answer answers what was asked (``rag.answer.question``): none holds
    the kind of thing asked for (a number for "hoeveel", a date for "wanneer", a name for "wie"/"waar"),
    or speaks of the question's names, or is about the question at all (its content words or its
    meaning: ``MIN_FOCUS``, ``MIN_QUESTION_SIMILARITY``). When one sentence does answer, the others that
    are supported stay ``supported`` (context around the answer);
``supported``
    otherwise; ``support`` names the passage sentence that supports it (document offsets and text).

``Verification.support`` is ``answered`` only when every sentence is supported, one of them answers the
question and no degenerate output was found (``rag.answer.degenerate``); else ``uncertain``.
Thresholds were calibrated on the labelled real-model answers in tests/data/llm and the extractive
answers of eval/qa.jsonl (``eval/calibrate_verify.py``; eval/README.md has the table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from rag.answer.check import CITE, SupportScorer, find_citations, sentence_units, short
from rag.answer.claims import missing_facts, names_found, someone_else
from rag.answer.degenerate import Flag, degenerate
from rag.answer.facts import names
from rag.answer.question import asked, holds_kind, unit_of
from rag.answer.verdicts import Verdict, Verification
from rag.ingest.chunking import sentence_spans
from rag.schema import Hit
from rag.text import detect_language

MIN_SIMILARITY = 0.86  # e5 cosine of an answer sentence with the passage sentence that supports it ...
MIN_OVERLAP = 0.6  # ... or this share of its content words (IDF-weighted) in that sentence and its neighbours
MIN_FOCUS = 0.2  # the question's content words (names left out) found around the answer ...
MIN_QUESTION_SIMILARITY = 0.82  # ... or the e5 cosine of the question with the answer or its support
CROSS_LINGUAL = 0.02  # ... lower by this for a question not in Dutch (the articles' language)
MIN_CONTENT_TOKENS = 1
# a model's answer must rest on a passage sentence that the question's ranking scores at least this share of
# the best one (calibrated on the labelled real-model answers: eval/calibrate_verify.py)
MIN_RANK_SHARE = 0.78
NEIGHBOUR_SHARE = 0.9
RANK_TIEBREAK = 0.0  # weight of the ranking when choosing a supporting sentence (0.15 let wrong answers through)
# a sentence that only points at the sources ("Dit staat in passage 1.", "This is stated in the first passage.")
META = re.compile(r"^(?:\W*(?:this|that|it|dit|dat|het|deze|die)\s+(?:is|are|was|wordt|worden|werd|staat|staan|stond|"
                  r"can be|kan)\s+(?:\w+\s+){0,2}(?:stated|mentioned|given|described|found|written|gegeven|genoemd|"
                  r"vermeld|beschreven|gevonden|geschreven|gezegd|te\s+vinden|te\s+lezen)\b|.*\b(?:are|is|worden|wordt)\s+"
                  r"(?:mentioned|described|given|genoemd|beschreven|vermeld)\s+in\s*(?:passage|bron|artikel|\[|$)|"
                  r"^\W*(?:this|that|it|dit|dat|het|zie|see)\s+(?:\w+\s+)?(?:staat|staan|is|are|stond)?\s*(?:in|op)\s+"
                  r"(?:de\s+|het\s+|the\s+)?(?:\w+\s+)?(?:passage|bron|artikel|tekst|article|source|text)s?\b)", re.I)
KIND_WORDS = ("oud lang vaak groot hoog ver duur snel zwaar laat jaar maand dag datum stad plaats gemeente land "
              "regio provincie naam old long often big large high far fast heavy late year month day date town "
              "city country place region name").split()

Vector = Callable[[str], np.ndarray]


@dataclass
class _Candidate:
    n: int
    hit: Hit
    start: int  # document offsets of the sentence
    end: int
    text: str
    window: str  # the sentence with the one before and after it (same passage)


class Verifier:
    """``vector(text)``: a sentence's unit vector (e5, "passage: "), ``query_vector(text)`` the question's
    ("query: "); both None without an embedder (then meaning is judged by the words alone)."""

    def __init__(self, scorer: SupportScorer, vector: Vector | None = None, query_vector: Vector | None = None,
                 *, vectors: Callable[[list[str]], list[np.ndarray]] | None = None,
                 document_text: Callable[[str], str | None] | None = None, min_similarity: float = MIN_SIMILARITY, min_overlap: float = MIN_OVERLAP,
                 min_focus: float = MIN_FOCUS, min_question_similarity: float = MIN_QUESTION_SIMILARITY) -> None:
        self.scorer = scorer
        self.vector = vector
        self.vectors = vectors
        self.document_text = document_text
        self.query_vector = query_vector
        self.min_similarity = min_similarity
        self.min_overlap = min_overlap
        self.min_focus = min_focus
        self.min_question_similarity = min_question_similarity

    # ------------------------------------------------------------------ the whole answer
    def check(self, question: str, text: str, passages: Sequence[Hit], *, lang: str = "nl",
              extractive: bool = False, flags: bool | None = None, ranked: Sequence | None = None) -> Verification:
        """Verdicts for every sentence of ``text`` (``[n]`` is ``passages[n-1]``; an extractive answer's units
        are its excerpts) and, for a model's answer (``flags``, default: not extractive), its flags. ``ranked``:
        the question's sentence ranking (``ExtractiveAnswerer.rank``); given, an answer must rest on a sentence
        that ranks near the best (``MIN_RANK_SHARE``)."""
        result = Verification()
        self._ranked = list(ranked) if ranked else None
        if (not extractive) if flags is None else flags:
            result.flags = degenerate(text, [h.chunk.text for h in passages], lang)
        q = asked(question)
        q_tokens = self._focus_tokens(question, q.names)
        q_vec = self.query_vector(question) if self.query_vector is not None else None
        answering: list[Verdict] = []
        for s, e in (_excerpts(text) if extractive else sentence_units(text)):
            unit = text[s:e]
            clean = " ".join(CITE.sub(" ", unit).split()).lstrip("> ").strip()
            if (len(self.scorer.tokens([clean])[0]) < MIN_CONTENT_TOKENS and not names(clean)) or \
                    (clean.endswith(":") and not find_citations(unit)) or META.search(clean):
                continue  # "Ja.", a lead-in ("Volgens de artikelen:"), "Dit staat in passage 1": nothing to check
            cited = [n for _, _, ns in find_citations(unit) for n in ns if 1 <= n <= len(passages)]
            verdict = self._sentence(unit, clean, s, e, list(dict.fromkeys(cited)), passages)
            result.verdicts.append(verdict)
            if verdict.verdict == "supported" and self._answers(q, q_tokens, q_vec, clean, verdict, passages):
                answering.append(verdict)
        result.answers_question = bool(answering)
        if not result.verdicts and not extractive and (flags is None or flags) and text.strip():
            result.flags.append(Flag("not_an_answer", "the reply only refers to the passages, it says nothing itself"))
        if not answering:
            why = self._why_off(q, result.supported)
            for v in result.supported:
                v.verdict, v.reason = "off_question", why
        return result

    def recite(self, text: str, passages: Sequence[Hit]) -> tuple[str, list[str]]:
        """Small models cite [1] for whatever they say: a sentence its cited passages do not support, but
        another given passage does, gets that passage's number instead. Returns the text and one line per
        change (for the warnings)."""
        changes: list[tuple[int, int, str]] = []
        notes: list[str] = []
        for s, e in sentence_units(text):
            unit = text[s:e]
            groups = list(CITE.finditer(unit))
            cited = [n for _, _, ns in find_citations(unit) for n in ns if 1 <= n <= len(passages)]
            clean = " ".join(CITE.sub(" ", unit).split())
            if not self.scorer.tokens([clean])[0] or META.search(clean):
                continue
            if not groups:  # uncited: the passage that says it, if one does (also across languages)
                n = next((m for m in range(1, len(passages) + 1)
                          if self._sentence(unit, clean, s, e, [m], passages).verdict == "supported"), None)
                if n is not None:
                    stripped = unit.rstrip()
                    cut = len(stripped.rstrip(".!?…:;\"'”’»)"))
                    changes.append((s, e, stripped[:cut].rstrip() + f" [{n}]" + stripped[cut:] + unit[len(stripped):]))
                    notes.append(f"cited [{n}] for \"{short(unit, 50)}\", the passage that says it")
                continue
            if not cited:
                continue
            if self._sentence(unit, clean, s, e, list(dict.fromkeys(cited)), passages).verdict == "supported":
                continue
            for n in range(1, len(passages) + 1):
                if n in cited:
                    continue
                if self._sentence(unit, clean, s, e, [n], passages).verdict == "supported":
                    new = unit
                    for g in reversed(groups):
                        new = new[:g.start()] + ("" if g is not groups[-1] else f"[{n}]") + new[g.end():]
                    changes.append((s, e, " ".join(new.split(" ")) if new else new))
                    notes.append(f"citation {''.join(f'[{c}]' for c in dict.fromkeys(cited))} of \"{short(unit, 50)}\" "
                                 f"changed to [{n}], the passage that says it")
                    break
        for s, e, new in reversed(changes):
            text = text[:s] + new + text[e:]
        return text, notes

    # ------------------------------------------------------------------ one sentence
    def _sentence(self, unit: str, clean: str, s: int, e: int, cited: list[int],
                  passages: Sequence[Hit]) -> Verdict:
        verdict = Verdict(unit.strip(), s, e, "unsupported", "", cited)
        if not cited:
            verdict.reason = "cites no passage"
            return verdict
        cands = self._candidates([(n, passages[n - 1]) for n in cited])
        if not cands:
            verdict.reason = "the cited passage has no sentence to compare it with"
            return verdict
        sims = self._similarities(clean, cands)
        tokens = self.scorer.tokens([clean] + [c.window for c in cands])
        overlaps = [self.scorer.overlap(tokens[0], t) for t in tokens[1:]]
        # of sentences that say it about as well, the one the question's ranking finds most about the question
        relevance = [self._candidate_share(c) for c in cands]
        order = sorted(range(len(cands)), key=lambda i: -(sims[i] + 0.3 * overlaps[i] + RANK_TIEBREAK * relevance[i]))
        best = cands[order[0]]
        verdict.similarity = sims[order[0]]
        verdict.support = {"n": best.n, "doc_id": best.hit.chunk.doc_id, "start": best.start, "end": best.end,
                           "text": best.text}
        cited_text = "\n".join(f"{passages[n - 1].chunk.title}\n{passages[n - 1].chunk.text}" for n in cited)
        near = " ".join(cands[i].window for i in order[:2])
        missing = missing_facts(clean, near, cited_text)
        if missing:
            verdict.reason = f"passage [{best.n}] does not say {missing}"
            return verdict
        other = someone_else(clean, best.text)
        if other:
            verdict.reason = f"passage [{best.n}] says this of {other}"
            return verdict
        if sims[order[0]] < self.min_similarity and max(overlaps) < self.min_overlap:
            verdict.reason = (f"no sentence of passage [{best.n}] says this (closest: similarity "
                              f"{sims[order[0]]:.2f}, {max(overlaps):.0%} of its words)")
            return verdict
        verdict.verdict, verdict.reason = "supported", f"passage [{best.n}] says this"
        return verdict

    def _candidates(self, cited: list[tuple[int, Hit]]) -> list[_Candidate]:
        out = []
        for n, hit in cited:
            c = hit.chunk
            spans = [(a, b) for a, b in sentence_spans(c.text, keep_quotes=False) if c.text[a:b].strip()]
            for i, (a, b) in enumerate(spans):
                text = c.text[a:b]
                if text.lstrip().startswith("#"):
                    continue
                lo, hi = spans[max(0, i - 1)][0], spans[min(len(spans) - 1, i + 1)][1]
                out.append(_Candidate(n, hit, c.start + a, c.start + b, text, c.text[lo:hi]))
        return out

    def _similarities(self, clean: str, cands: list[_Candidate]) -> list[float]:
        if self.vector is None:
            return [0.0] * len(cands)
        if self.vectors is not None:  # one engine call for what is not cached yet
            v, *others = self.vectors([clean] + [c.text for c in cands])
            return [float(v @ o) for o in others]
        v = self.vector(clean)
        return [float(v @ self.vector(c.text)) for c in cands]

    # ------------------------------------------------------------------ the question
    def _focus_tokens(self, question: str, q_names: Sequence[str]) -> set[str]:
        """The question's content words, without its names and the words that only say what kind of
        answer it wants ("oud" in "hoe oud", "stad" in "in welke stad")."""
        toks = set(self.scorer.tokens([question])[0])
        name_toks = set(self.scorer.tokens([" ".join(q_names)])[0]) if q_names else set()
        return toks - name_toks - self._kind_words()

    def _kind_words(self) -> set[str]:
        if not hasattr(self, "_kind_tokens"):
            self._kind_tokens = set(self.scorer.tokens([" ".join(KIND_WORDS)])[0])
        return self._kind_tokens

    def _answers(self, q, q_tokens: set[str], q_vec, clean: str, verdict: Verdict, passages: Sequence[Hit]) -> bool:
        f = self.address_features(q, q_tokens, q_vec, clean, verdict, passages)
        if not (f["kind"] and f["names"]) or f["counted"] is False:
            return False  # "hoeveel kinderen": the sentence must speak of kinderen, not of any number
        if self._needs_focus(q) and f["focus"] == 0.0 and detect_language(q.question) == "nl":
            return False  # a number, date or name near none of the question's words answers something else
        if f["rank_share"] is not None and f["rank_share"] < MIN_RANK_SHARE:
            return False  # it rests on a sentence the ranking finds far less about the question than the best
        if f["focus"] is not None and f["focus"] >= self.min_focus:
            return True
        if f["question_similarity"] is not None:
            lower = CROSS_LINGUAL if detect_language(q.question) != "nl" else 0.0
            return f["question_similarity"] >= self.min_question_similarity - lower
        return f["focus"] is None

    def _candidate_share(self, c: "_Candidate") -> float:
        ranked = getattr(self, "_ranked", None)
        if not ranked or ranked[0].score <= 0:
            return 0.0
        own = [r.score for r in ranked if r.hit.chunk.doc_id == c.hit.chunk.doc_id and r.start < c.end and c.start < r.end]
        return max(own) / ranked[0].score if own else 0.0

    def _rank_share(self, verdict: Verdict) -> float | None:
        """The ranking score of the supporting sentence, as a share of the best sentence's (None without a
        ranking); a sentence the ranking left out (a heading, a fragment) counts as its best neighbour, less."""
        ranked = getattr(self, "_ranked", None)
        if not ranked or verdict.support is None or ranked[0].score <= 0:
            return None
        sup = verdict.support
        own = [r.score for r in ranked if r.hit.chunk.doc_id == sup["doc_id"] and r.start < sup["end"] and sup["start"] < r.end]
        if own:
            return max(own) / ranked[0].score
        near = [r.score for r in ranked if r.hit.chunk.doc_id == sup["doc_id"]
                and (abs(r.start - sup["end"]) < 3 or abs(sup["start"] - r.end) < 3)]
        return NEIGHBOUR_SHARE * max(near) / ranked[0].score if near else 0.0

    @staticmethod
    def _needs_focus(q) -> bool:
        """A name, place or person, or a number or date whose unit ("jaar oud") or counted thing ("hoeveel
        kinderen") does not already tie it to the question, must stand near the question's own words."""
        if q.kind in ("place", "person", "name"):
            return True
        return q.kind in ("number", "date") and q.counted is None and unit_of(q.question) is None

    def address_features(self, q, q_tokens: set[str], q_vec, clean: str, verdict: Verdict,
                         passages: Sequence[Hit]) -> dict:
        """What the address check weighs (``eval/calibrate_verify.py`` prints them): does the sentence hold
        the kind asked for, speak of the question's names, hold its other words, mean what it asks?"""
        hit = passages[verdict.support["n"] - 1] if verdict.support else None
        support = verdict.support["text"] if verdict.support else ""
        around = clean + "\n" + support
        window = around + "\n" + self._window_text(verdict, hit)
        # the names: near it, or the article's title; for a person, place or name asked for, in the very
        # sentence that supports it ("the president of South Korea" is not the American one a line away)
        near = around if q.kind in ("person", "place", "name") else window
        context = near + "\n" + (hit.chunk.title if hit else "")
        focus = self.scorer.overlap(q_tokens, self.scorer.tokens([window])[0]) if q_tokens else None
        qsim = None
        if q_vec is not None and self.vector is not None:
            qsim = max(float(q_vec @ self.vector(t)) for t in (clean, support or clean))
        counted = None
        if q.counted:
            counted_tokens = set(self.scorer.tokens([q.counted])[0])
            counted = bool(counted_tokens & set(self.scorer.tokens([window])[0])) if counted_tokens else None
        return {"kind": holds_kind(clean, q.kind, q.names, q.question), "rank_share": self._rank_share(verdict),
                "names": names_found(q.core_names, context), "counted": counted,
                "focus": focus, "question_similarity": qsim}

    def _window_text(self, verdict: Verdict, hit: Hit | None) -> str:
        """The text around the supporting sentence: 300 characters either side, in the article when the store
        gives it (a model's passage may be that one sentence), else in the passage."""
        if hit is None or verdict.support is None:
            return ""
        start, end = verdict.support["start"], verdict.support["end"]
        article = None
        if self.document_text is not None:
            try:
                article = self.document_text(hit.chunk.doc_id)
            except Exception:  # a store that cannot give it now: the passage will do
                article = None
        if article and article[start:end] == verdict.support["text"]:
            return article[max(0, start - 300):end + 300]
        c = hit.chunk
        a, b = start - c.start, end - c.start
        return c.text[max(0, a - 300):b + 300]

    @staticmethod
    def _why_off(q, supported: list[Verdict]) -> str:
        kind = {"number": "a number", "date": "a date", "place": "a place", "person": "a person",
                "name": "a name"}.get(q.kind)
        if kind and not any(holds_kind(CITE.sub(" ", v.sentence), q.kind, q.names, q.question) for v in supported):
            return f"the question asks for {kind}; the answer gives none"
        if q.names:
            return "the answer is not about " + ", ".join(q.names) + " or not about what was asked"
        return "the answer does not answer what was asked"


def _excerpts(text: str) -> list[tuple[int, int]]:
    """The units of an extractive answer: one per excerpt (a run of the source's sentences, one citation)."""
    out, pos = [], 0
    for part in text.split("\n\n"):
        start = text.index(part, pos)
        if part.strip():
            lead = len(part) - len(part.lstrip())
            out.append((start + lead, start + len(part.rstrip())))
        pos = start + len(part)
    return out
