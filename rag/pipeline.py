"""Questions in, answers with checked citations out: rewrite → retrieve → abstain? → generate → check.

``Pipeline.ask`` returns an :class:`~rag.schema.Answer`; ``Pipeline.ask_stream`` yields one
``sources`` event, then ``token`` events (pieces of the answer text), then one ``done`` event
with the final Answer. The done event's ``Answer.answer`` is the CHECKED text (invalid citations
removed, citations attached to uncited sentences), which can differ from the concatenated
tokens: clients should show it in place of the streamed text.

Generators:

* ``"ollama"``: the LLM answers from the numbered passages (``rag.prompt``); its citations are
  checked (``rag.citations``). LLM errors are raised (``LLMUnavailable``, ``LLMModelNotFound``
  with the ``ollama pull`` to run, ``LLMTimeout``, ``LLMStreamBroken``, ``LLMError``).
* ``"extractive"``: the best-matching sentences of the passages, quoted and cited
  (``rag.extractive``). Needs no LLM.
* ``"auto"``: Ollama when its status says it answers and has the model, else extractive; any LLM
  error before the first token also falls back to extractive. Either way ``Answer.generator``
  says which one answered and a warning says why it fell back.

A stream that breaks half-way in ``auto`` mode, after tokens were already sent, is finished
with the extractive answer appended (after a short separator line); the done Answer then has
``generator="extractive"``, the partial LLM text plus the extractive quotes as its text, the
citations of both and a warning. (``ask`` sends nothing before it is done, so there the partial
text is dropped and the answer is purely extractive.)

Abstention: before anything is generated, ``rag.decide.Decider`` weighs the evidence (the best
dense cosine of the question with a passage or one of its sentences; see that module for the
calibration). Without enough, the pipeline says so without generating
(``abstain_reason="retrieval"``), lists no sources, and the language model never sees the passages.
With the LLM the model may abstain too (``abstain_reason="model"``; its "not in the articles"
replies are recognised in Dutch and English by ``rag.prompt.says_cannot_answer``). An abstention by
retrieval reports the generator that would have answered (``"ollama"`` when the LLM was to be used).
``Answer.relevance`` is the decision's score.

``auto`` without a running Ollama answers extractively with the warning "answered extractively: <why>";
the chat page shows that once in its status line instead of under every answer.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator, Literal

from .citations import SupportScorer, check_citations, find_citations
from .choice import Choice, choose_generator
from .decide import Decider
from .config import Settings
from .contract import K_MESSAGE, AskRequest, check_length, parse
from .errors import ConfigError, InvalidQuery, LLMError
from .extractive import Extract, ExtractiveAnswerer, ScoredSentence
from .followup import Rewrite, check_history, rewrite_by_rule, rewrite_with_llm
from .prompt import PromptTooLong, build_prompt, no_answer_text, says_cannot_answer
from .retrieval import Retriever
from .schema import Answer, Citation, Hit
from .text import BM25Analyzer, detect_language

log = logging.getLogger(__name__)

REWRITE_MAX_TOKENS = 200

BROKEN_SEPARATOR = {
    "nl": "\n\n(Het antwoord van het taalmodel brak af. Uit de artikelen:)\n",
    "en": "\n\n(The language model's answer broke off. From the articles:)\n",
}


@dataclass
class StreamEvent:
    kind: Literal["sources", "token", "done"]
    data: Any  # sources: list[Hit]; token: str; done: Answer


class Pipeline:
    def __init__(self, retriever: Retriever, llm, settings: Settings, *,
                 scorer: SupportScorer | None = None, extractor: ExtractiveAnswerer | None = None) -> None:
        self.retriever = retriever
        self.llm = llm
        self.settings = settings
        store = getattr(retriever, "store", None)
        self.scorer = scorer or (SupportScorer.from_store(store) if store is not None
                                 else SupportScorer(BM25Analyzer(settings.bm25_language)))
        self.extractor = extractor or ExtractiveAnswerer(self.scorer, getattr(retriever, "embedder", None))
        self.decider = Decider(threshold_dutch=settings.abstain_threshold)

    # ------------------------------------------------------------------ public
    def ask(self, question: str, *, k: int = 5, mode: str = "hybrid", generator: str = "auto",
            history: list[dict] | None = None) -> Answer:
        self._validate(question, k, mode, generator)
        history = check_history(history)
        answer = None
        for ev in self._run(question, k, mode, generator, history, streaming=False):
            if ev.kind == "done":
                answer = ev.data
        assert answer is not None
        return answer

    def ask_stream(self, question: str, *, k: int = 5, mode: str = "hybrid", generator: str = "auto",
                   history: list[dict] | None = None) -> Iterator[StreamEvent]:
        """Arguments are checked now (InvalidQuery); the work starts on the first ``next()``."""
        self._validate(question, k, mode, generator)
        history = check_history(history)
        return self._run(question, k, mode, generator, history, streaming=True)

    # ------------------------------------------------------------------ steps
    def _validate(self, question: str, k: int, mode: str, generator: str) -> None:
        """The request contract (``rag.contract``), plus the question-length setting."""
        if isinstance(k, bool) or not isinstance(k, int):
            raise InvalidQuery(K_MESSAGE)
        if mode is None or generator is None:
            raise InvalidQuery("mode and generator must be given")
        parse(AskRequest, question=question, k=k, mode=mode, generator=generator)
        check_length(question, self.settings.max_question_chars)

    pinned_choice: Choice | None = None  # set by with_choice: the decision the caller already made

    def with_choice(self, choice: Choice) -> "Pipeline":
        """A shallow copy that uses ``choice`` instead of deciding again (the API decides once,
        takes an LLM slot for it, and pins it here)."""
        pinned = copy.copy(self)
        pinned.pinned_choice = choice
        return pinned

    def _choose(self, generator: str) -> tuple[bool, str | None]:
        """(use the LLM?, why not, for auto): ``rag.choice.choose_generator`` decides."""
        choice = self.pinned_choice if self.pinned_choice is not None else choose_generator(self.llm, generator)
        return choice.use_llm, choice.why_not

    def _rewrite(self, question: str, history: list[dict], lang: str, use_llm: bool) -> Rewrite:
        if use_llm and (history or lang != "nl"):
            rw = rewrite_with_llm(self.llm, question, history, num_ctx=self.settings.num_ctx,
                                  max_tokens=REWRITE_MAX_TOKENS)
            if not history and rw.method == "llm":
                rw.standalone = question  # nothing to resolve: keep the user's words, use the translation
            return rw
        return rewrite_by_rule(question, history)

    def _run(self, question: str, k: int, mode: str, generator: str, history: list[dict],
             streaming: bool) -> Iterator[StreamEvent]:
        question = question.strip()
        lang = detect_language(question)
        warnings: list[str] = []
        timings: dict[str, float] = {}
        use_llm, why_not = self._choose(generator)
        if why_not:  # (the chat page leaves this one out: its status line already says it, once)
            warnings.append(f"answered extractively: {why_not}")

        # 1. the standalone question (and its Dutch phrasing)
        t = time.perf_counter()
        try:
            rw = self._rewrite(question, history, lang, use_llm)
        except LLMError as e:
            if generator == "ollama":
                raise
            use_llm = False
            warnings.append(f"answered extractively: {e}")
            rw = rewrite_by_rule(question, history)
        warnings.extend(rw.warnings)
        if rw.method == "llm":
            timings["rewrite_ms"] = (time.perf_counter() - t) * 1000
        queries = rw.queries
        standalone = rw.standalone if (history or rw.standalone != question) else None

        # 2. retrieval
        t = time.perf_counter()
        hits = self.retriever.search(queries if len(queries) > 1 else queries[0], k=k, mode=mode)
        timings["retrieval_ms"] = (time.perf_counter() - t) * 1000

        # 3. decide: evidence enough to answer? (the same sentence ranking feeds the extractive answer)
        t_gen = time.perf_counter()
        ranked = self.extractor.rank(queries, hits)
        decision = self.decider.decide(hits, ranked, dutch=len(queries) > 1 or lang == "nl")
        relevance = decision.evidence.score
        if not decision.answer:
            hits = []  # passages that support nothing are not shown as sources
        yield StreamEvent("sources", hits)

        def done(text: str, gen: str, citations: list[Citation], *, abstained: bool = False,
                 reason: str | None = None, relevance: float | None = None) -> StreamEvent:
            timings["generation_ms"] = (time.perf_counter() - t_gen) * 1000
            return StreamEvent("done", Answer(
                question=question, answer=text, abstained=abstained, generator=gen,
                citations=[] if abstained else citations, sources=[] if abstained else hits, timings=dict(timings),
                standalone_question=standalone, warnings=list(dict.fromkeys(warnings)), queries=queries,
                relevance=relevance, abstain_reason=reason))

        if not decision.answer or not ranked:
            text = no_answer_text(lang)
            yield StreamEvent("token", text)
            yield done(text, "ollama" if use_llm else "extractive", [], abstained=True, reason="retrieval",
                       relevance=relevance)
            return

        # 4. generation
        if not use_llm:
            ex = self.extractor.answer(queries, hits, ranked)
            for piece in _pieces(ex.text):
                yield StreamEvent("token", piece)
            yield done(ex.text, "extractive", ex.citations, relevance=relevance)
            return

        try:
            prompt = build_prompt(rw.standalone, hits, num_ctx=self.settings.num_ctx,
                                  max_answer_tokens=self.settings.max_answer_tokens, language=lang)
        except PromptTooLong as e:
            if generator == "ollama":
                raise ConfigError(str(e)) from e
            warnings.append(f"answered extractively: {e}")
            yield from self._extractive_events(queries, hits, ranked, done, relevance)
            return
        warnings.extend(prompt.warnings)

        pieces: list[str] = []
        stream = self.llm.stream_chat(prompt.messages, num_ctx=prompt.num_ctx,
                                      max_tokens=self.settings.max_answer_tokens)
        try:
            for piece in stream:
                pieces.append(piece)
                if streaming:
                    yield StreamEvent("token", piece)
            text = "".join(pieces).strip()
            if not text:
                raise LLMError(f"the model {getattr(self.llm, 'model', '')} returned an empty answer")
        except LLMError as e:
            if generator == "ollama":
                raise
            warnings.append(f"answered extractively: {e}")
            if streaming and pieces:
                warnings.append(f"the language model's answer broke off after {len(pieces)} piece(s) had been "
                                "sent; the extractive answer was appended")
                yield from self._finish_broken("".join(pieces), prompt.passages, queries, hits, ranked, lang,
                                               done, relevance)
            else:
                yield from self._extractive_events(queries, hits, ranked, done, relevance)
            return
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

        model_cited = bool([n for _, _, ns in find_citations(text) for n in ns if 1 <= n <= len(prompt.passages)])
        if says_cannot_answer(text, cited=model_cited):
            yield done(text, "ollama", [], abstained=True, reason="model", relevance=relevance)
            return
        checked = check_citations(text, prompt.passages, self.scorer)
        warnings.extend(checked.warnings)
        if not streaming:
            yield StreamEvent("token", checked.text)
        yield done(checked.text, "ollama", checked.citations, relevance=relevance)

    # ------------------------------------------------------------------ fallbacks
    def _extractive_events(self, queries, hits, ranked, done, relevance) -> Iterator[StreamEvent]:
        ex = self.extractor.answer(queries, hits, ranked)
        for piece in _pieces(ex.text):
            yield StreamEvent("token", piece)
        yield done(ex.text, "extractive", ex.citations, relevance=relevance)

    def _finish_broken(self, partial: str, passages: list[Hit], queries, hits, ranked: list[ScoredSentence],
                       lang: str, done, relevance) -> Iterator[StreamEvent]:
        """Tokens were sent, then the LLM stream broke: append the extractive answer."""
        ex: Extract = self.extractor.answer(queries, hits, ranked)
        sep = BROKEN_SEPARATOR.get(lang, BROKEN_SEPARATOR["nl"])
        yield StreamEvent("token", sep)
        for piece in _pieces(ex.text):
            yield StreamEvent("token", piece)
        checked = check_citations(partial, passages, self.scorer, attach=False)
        by_n = {c.n: c for c in checked.citations}
        for c in ex.citations:
            by_n.setdefault(c.n, c)
        text = checked.text.rstrip() + sep + ex.text
        yield done(text, "extractive", [by_n[n] for n in sorted(by_n)], relevance=relevance)


def _pieces(text: str, n: int = 4) -> list[str]:
    """Split an extractive answer into a few stream pieces (at word boundaries)."""
    words = re.findall(r"\S+\s*", text)
    if not words:
        return [text] if text else []
    size = max(1, -(-len(words) // n))
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)]

