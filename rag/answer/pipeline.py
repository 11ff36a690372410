"""Questions in, answers with checked citations out: rewrite → retrieve → abstain? → generate → check.

``Pipeline.ask`` returns an :class:`~rag.schema.Answer`; ``Pipeline.ask_stream`` yields one
``sources`` event, then ``token`` events (pieces of the answer text), then one ``done`` event
with the final Answer. The done event's ``Answer.answer`` is the CHECKED text (invalid citations
removed, citations attached to uncited sentences), which can differ from the concatenated
tokens: clients should show it in place of the streamed text.

Generators:

* ``"ollama"`` / ``"openai"`` (the LLM backend, ``rag.llms.registry``): the LLM answers from the numbered passages (``rag.answer.prompt``); its citations are
  checked (``rag.answer.check``). LLM errors are raised (``LLMUnavailable``, ``LLMModelNotFound``
  with the ``ollama pull`` to run, ``LLMTimeout``, ``LLMStreamBroken``, ``LLMError``).
* ``"extractive"``: the best-matching sentences of the passages, quoted and cited
  (``rag.answer.extractive``). Needs no LLM.
* ``"auto"``: Ollama when its status says it answers and has the model, else extractive; any LLM
  error before the first token also falls back to extractive. Either way ``Answer.generator``
  says which one answered and a warning says why it fell back.

A stream that breaks half-way in ``auto`` mode, after tokens were already sent, is finished
with the extractive answer appended (after a short separator line); the done Answer then has
``generator="extractive"``, the partial LLM text plus the extractive quotes as its text, the
citations of both and a warning. (``ask`` sends nothing before it is done, so there the partial
text is dropped and the answer is purely extractive.)

Abstention: before anything is generated, ``rag.answer.decide.Decider`` weighs the evidence (the best
dense cosine of the question with a passage or one of its sentences; see that module for the
calibration). Without enough, the pipeline says so without generating
(``abstain_reason="retrieval"``), lists no sources, and the language model never sees the passages.
With the LLM the model may abstain too (``abstain_reason="model"``; its "not in the articles"
replies are recognised in Dutch and English by ``rag.answer.prompt.says_cannot_answer``). An abstention by
retrieval reports the generator that would have answered (``"ollama"`` when the LLM was to be used).
``Answer.relevance`` is the decision's score.

Support (``Answer.support``): ``"abstained"`` as above; ``"uncertain"`` when the decide step finds the
passages on the subject but no sentence that answers (``rag.answer.decide``: no sentence stands out, or the
number/date asked for is not in the sentences about the question) — the extractive answer then says so
first, in the question's language, and quotes the closest sentences; an LLM answer left without any
checkable citation is uncertain too; ``"answered"`` otherwise. With the LLM the decide step's "uncertain"
is left to the model, which reads the passages (it may decline: ``abstain_reason="model"``).

Check (last step, every generator): citation numbers are renumbered in the order they appear in the
answer, 1, 2, 3 without gaps (``rag.answer.check.renumber``).

``auto`` without a running Ollama answers extractively with the warning "answered extractively: <why>";
the chat page shows that once in its status line instead of under every answer.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

from rag.answer.choice import Choice, choose_generator
from rag.answer.check import SupportScorer, check_citations, find_citations, renumber
from rag.config import Settings
from rag.contract import K_MESSAGE, LLM_GENERATORS, AskRequest, check_length, parse
from rag.answer.decide import Decider, Decision
from rag.errors import ConfigError, InvalidQuery, LLMError
from rag.answer.extractive import Extract, ExtractiveAnswerer, ScoredSentence
from rag.answer.rewrite import Rewrite, check_history, rewrite_by_rule, rewrite_with_llm
from rag.answer.prompt import Prompt, PromptTooLong, build_prompt, no_answer_text, says_cannot_answer
from rag.retrieve.retriever import Retriever
from rag.schema import Answer, Citation, Hit
from rag.text import BM25Analyzer, detect_language
from rag.llms.thinking import strip_thinking

log = logging.getLogger(__name__)

REWRITE_MAX_TOKENS = 200

BROKEN_SEPARATOR = {
    "nl": "\n\n(Het antwoord van het taalmodel brak af. Uit de artikelen:)\n",
    "en": "\n\n(The language model's answer broke off. From the articles:)\n",
}
UNCERTAIN_LEAD = {
    "nl": "Ik vond geen zin die dit precies beantwoordt; dit komt het dichtst in de buurt:",
    "en": "I found no sentence that answers this exactly; this is the closest:",
}
UNCITED_LEAD = {
    "nl": "Het taalmodel noemde voor dit antwoord geen bron uit de artikelen; controleer het zelf:",
    "en": "The language model cited no passage of the articles for this answer; check it yourself:",
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

    pinned_choice: Choice | None = None  # set by with_choice: the decision the caller already made

    def with_choice(self, choice: Choice) -> "Pipeline":
        """A shallow copy that uses ``choice`` instead of deciding again (the API decides once,
        takes an LLM slot for it, and pins it here)."""
        pinned = copy.copy(self)
        pinned.pinned_choice = choice
        return pinned

    # ------------------------------------------------------------------ the steps, in order
    def _run(self, question: str, k: int, mode: str, generator: str, history: list[dict],
             streaming: bool) -> Iterator[StreamEvent]:
        question = question.strip()
        turn = Turn(question, detect_language(question), generator, history, streaming)
        self._choose(turn)
        self._rewrite(turn)
        self._retrieve(turn, k, mode)
        self._decide(turn)
        yield StreamEvent("sources", turn.hits)
        turn.started = time.perf_counter()
        if turn.decision.support == "abstained":
            yield from self._abstain(turn)
        elif turn.use_llm:
            yield from self._generate_with_llm(turn)
        else:
            yield from self._extractive(turn)

    def _validate(self, question: str, k: int, mode: str, generator: str) -> None:
        """The request contract (``rag.contract``), plus the question-length setting."""
        if isinstance(k, bool) or not isinstance(k, int):
            raise InvalidQuery(K_MESSAGE)
        if mode is None or generator is None:
            raise InvalidQuery("mode and generator must be given")
        parse(AskRequest, question=question, k=k, mode=mode, generator=generator)
        check_length(question, self.settings.max_question_chars)

    def _choose(self, turn: Turn) -> None:
        """Use the LLM? ``rag.answer.choice.choose_generator`` decides (or the caller did: ``with_choice``)."""
        choice = self.pinned_choice if self.pinned_choice is not None else choose_generator(self.llm, turn.generator)
        turn.use_llm = choice.use_llm
        if choice.why_not:  # (the chat page leaves this one out: its status line already says it, once)
            turn.warnings.append(f"answered extractively: {choice.why_not}")

    def _rewrite(self, turn: Turn) -> None:
        """1. The standalone question (and its Dutch phrasing): by the LLM when there is one, else by rule."""
        t = time.perf_counter()
        if turn.use_llm and (turn.history or turn.lang != "nl"):
            try:
                rw = rewrite_with_llm(self.llm, turn.question, turn.history, num_ctx=self.settings.num_ctx,
                                      max_tokens=REWRITE_MAX_TOKENS, max_chars=self.settings.max_question_chars)
                if not turn.history and rw.method == "llm":
                    rw.standalone = turn.question  # nothing to resolve: keep the user's words, use the translation
            except LLMError as e:
                self._fall_back(turn, e)
                rw = rewrite_by_rule(turn.question, turn.history, self.settings.max_question_chars)
        else:  # the standalone question stays within the question-length limit
            rw = rewrite_by_rule(turn.question, turn.history, self.settings.max_question_chars)
        turn.warnings.extend(rw.warnings)
        if rw.method == "llm":
            turn.timings["rewrite_ms"] = (time.perf_counter() - t) * 1000
        turn.rewrite = rw

    def _retrieve(self, turn: Turn, k: int, mode: str) -> None:
        """2. The passages."""
        t = time.perf_counter()
        queries = turn.queries
        turn.hits = self.retriever.search(queries if len(queries) > 1 else queries[0], k=k, mode=mode)
        turn.timings["retrieval_ms"] = (time.perf_counter() - t) * 1000

    def _decide(self, turn: Turn) -> None:
        """3. Evidence enough to answer? (The same sentence ranking feeds the extractive answer.)"""
        turn.ranked = self.extractor.rank(turn.queries, turn.hits)
        dutch = len(turn.queries) > 1 or turn.lang == "nl"
        turn.decision = self.decider.decide(turn.hits, turn.ranked, dutch=dutch, queries=turn.queries)
        if turn.decision.support == "abstained":
            turn.hits = []  # passages that support nothing are not shown as sources

    def _abstain(self, turn: Turn) -> Iterator[StreamEvent]:
        text = no_answer_text(turn.lang)
        yield StreamEvent("token", text)
        yield self._done(turn, text, self._llm_name() if turn.use_llm else "extractive", [], support="abstained",
                         reason="retrieval")

    def _extractive(self, turn: Turn) -> Iterator[StreamEvent]:
        """4a. Generate without an LLM: the best sentences, quoted and cited (said to be the closest ones
        when the decide step is uncertain)."""
        ex = self.extractor.answer(turn.queries, turn.hits, turn.ranked)
        support = turn.decision.support
        text = ex.text if support == "answered" else f"{lead(UNCERTAIN_LEAD, turn.lang)}\n\n{ex.text}"
        for piece in _pieces(text):
            yield StreamEvent("token", piece)
        yield self._done(turn, text, "extractive", ex.citations, support=support)

    def _generate_with_llm(self, turn: Turn) -> Iterator[StreamEvent]:
        """4b. Generate with the LLM from the numbered passages; any LLM error falls back to 4a in ``auto``."""
        try:
            prompt = build_prompt(turn.rewrite.standalone, turn.hits, num_ctx=self.settings.num_ctx,
                                  max_answer_tokens=self.settings.max_answer_tokens, language=turn.lang)
        except PromptTooLong as e:
            if turn.generator in LLM_GENERATORS:
                raise ConfigError(str(e)) from e
            turn.warnings.append(f"answered extractively: {e}")
            yield from self._extractive(turn)
            return
        turn.warnings.extend(prompt.warnings)
        pieces: list[str] = []
        try:
            for piece in self._llm_pieces(prompt):
                pieces.append(piece)
                if turn.streaming:
                    yield StreamEvent("token", piece)
            text = strip_thinking("".join(pieces)).strip()  # (a lone </think> the template opened in the prompt)
            if not text:
                raise LLMError(f"the model {getattr(self.llm, 'model', '')} returned an empty answer")
        except LLMError as e:
            self._fall_back(turn, e)
            if turn.streaming and pieces:
                turn.warnings.append(f"the language model's answer broke off after {len(pieces)} piece(s) had "
                                     "been sent; the extractive answer was appended")
                yield from self._finish_broken(turn, "".join(pieces), prompt.passages)
            else:
                yield from self._extractive(turn)
            return
        yield from self._check_llm_answer(turn, text, prompt)

    def _llm_pieces(self, prompt: Prompt) -> Iterator[str]:
        stream = self.llm.stream_chat(prompt.messages, num_ctx=prompt.num_ctx,
                                      max_tokens=self.settings.max_answer_tokens)
        try:
            yield from stream
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _check_llm_answer(self, turn: Turn, text: str, prompt: Prompt) -> Iterator[StreamEvent]:
        """5. Check: did the model decline? Are its citations real (``rag.answer.check``)?"""
        passages = prompt.passages
        model_cited = bool([n for _, _, ns in find_citations(text) for n in ns if 1 <= n <= len(passages)])
        if says_cannot_answer(text, cited=model_cited):
            yield self._done(turn, text, self._llm_name(), [], support="abstained", reason="model")
            return
        checked = check_citations(text, passages, self.scorer)
        turn.warnings.extend(checked.warnings)
        answer_text, support = checked.text, "answered"
        if not checked.citations:
            answer_text, support = f"{lead(UNCITED_LEAD, turn.lang)}\n\n{checked.text}", "uncertain"
        done = self._done(turn, answer_text, self._llm_name(), checked.citations, support=support)
        if not turn.streaming:
            yield StreamEvent("token", done.data.answer)
        yield done

    def _fall_back(self, turn: Turn, error: LLMError) -> None:
        """An LLM error: raised when the LLM was asked for, else the rest is answered extractively."""
        if turn.generator in LLM_GENERATORS:
            raise error
        turn.use_llm = False
        turn.warnings.append(f"answered extractively: {error}")

    def _llm_name(self) -> str:
        """Which backend answered (``Answer.generator``): ``ollama`` or ``openai``."""
        return getattr(self.llm, "name", None) or "ollama"

    def _finish_broken(self, turn: Turn, partial: str, passages: list[Hit]) -> Iterator[StreamEvent]:
        """Tokens were sent, then the LLM stream broke: append the extractive answer."""
        ex: Extract = self.extractor.answer(turn.queries, turn.hits, turn.ranked)
        sep = lead(BROKEN_SEPARATOR, turn.lang)
        yield StreamEvent("token", sep)
        for piece in _pieces(ex.text):
            yield StreamEvent("token", piece)
        checked = check_citations(partial, passages, self.scorer, attach=False)
        by_n = {c.n: c for c in checked.citations}
        for c in ex.citations:
            by_n.setdefault(c.n, c)
        text = checked.text.rstrip() + sep + ex.text
        yield self._done(turn, text, "extractive", [by_n[n] for n in sorted(by_n)], support=turn.decision.support)

    def _done(self, turn: Turn, text: str, generator: str, citations: list[Citation], *, support: str,
              reason: str | None = None) -> StreamEvent:
        """The final Answer: citations renumbered in the order the text cites them."""
        abstained = support == "abstained"
        if not abstained:
            text, citations = renumber(text, citations)
        turn.timings["generation_ms"] = (time.perf_counter() - turn.started) * 1000
        return StreamEvent("done", Answer(
            question=turn.question, answer=text, abstained=abstained, generator=generator,
            citations=[] if abstained else citations, sources=[] if abstained else turn.hits,
            timings=dict(turn.timings), standalone_question=turn.standalone,
            warnings=list(dict.fromkeys(turn.warnings)), queries=turn.queries, relevance=turn.relevance,
            abstain_reason=reason, support=support))


def _pieces(text: str, n: int = 4) -> list[str]:
    """Split an extractive answer into a few stream pieces (at word boundaries)."""
    words = re.findall(r"\S+\s*", text)
    if not words:
        return [text] if text else []
    size = max(1, -(-len(words) // n))
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)]
