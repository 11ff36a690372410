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
import time
from typing import Iterator

from rag.answer.choice import Choice, choose_generator
from rag.answer.context import budget_for, select_passages
from rag.answer.check import SupportScorer, only_citations, renumber
from rag.answer.degenerate import degenerate
from rag.answer.generate import LLMGeneration
from rag.answer.turn import UNCERTAIN_LEAD, StreamEvent, Turn, lead, pieces
from rag.answer.verdicts import Verification
from rag.answer.verify import Verifier
from rag.config import Settings
from rag.contract import K_MESSAGE, AskRequest, check_length, parse
from rag.answer.decide import Decider
from rag.errors import InvalidQuery, LLMError
from rag.answer.extractive import ExtractiveAnswerer
from rag.answer.rewrite import check_history, needs_context, rewrite_by_rule, rewrite_with_llm
from rag.answer.prompt import no_answer_text
from rag.retrieve.retriever import Retriever
from rag.schema import Answer, Chunk, Citation, Hit
from rag.text import BM25Analyzer, detect_language

log = logging.getLogger(__name__)

REWRITE_MAX_TOKENS = 200
# an extractive answer that does not answer the question gives its place to a close runner-up that does
RUNNER_UPS, RUNNER_UP_SHARE = 6, 0.75

class Pipeline(LLMGeneration):
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
        embedder = getattr(retriever, "embedder", None)
        self.verifier = Verifier(self.scorer, self.extractor.sentence_vector if embedder is not None else None,
                                 embedder.embed_query if embedder is not None else None,
                                 vectors=self.extractor.sentence_vectors if embedder is not None else None,
                                 document_text=self._document_text)

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

    def passages_for(self, question: str, *, k: int = 5, mode: str = "hybrid", budget: int | None | str = "setting",
                     history: list[dict] | None = None) -> list[Hit]:
        """What the language model would read for this question (steps 1-3 by rule, no LLM call):
        ``[]`` when the decide step abstains. ``budget``: tokens of passage text, None for whole
        chunks, "setting" for RAG_CONTEXT_TOKENS (``rag eval``'s context recall)."""
        self._validate(question, k, mode, "extractive")
        question = question.strip()
        turn = Turn(question, detect_language(question), "extractive", check_history(history), False)
        self._rewrite(turn)
        self._retrieve(turn, k, mode)
        self._decide(turn)
        if turn.decision.support == "abstained":
            return []
        return self._context(turn, self._budget() if budget == "setting" else budget)

    def _budget(self) -> int | None:
        """RAG_CONTEXT_TOKENS: tokens of passage text, None for whole chunks."""
        value = self.settings.context_tokens
        return None if value == "chunks" else int(value)

    def _context(self, turn: Turn, budget: int | None) -> list[Hit]:
        """4. What the model reads (``rag.answer.context``): the sentences that answer, with neighbours."""
        from rag.llms.tokens import count_tokens

        budget = budget_for(budget, turn.decision.evidence.gap if turn.decision else None)
        return select_passages(turn.hits, turn.ranked, budget=budget, count_tokens=count_tokens,
                               document_text=self._document_text)

    def _document_text(self, doc_id: str) -> str | None:
        """An article's whole text from the store (None when it cannot say)."""
        docs = getattr(getattr(self.retriever, "store", None), "documents", None)
        if docs is None:
            return None
        doc = docs.get(doc_id) if hasattr(docs, "get") else docs[doc_id]
        return doc.text if doc is not None else None

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
        # the model only for a follow-up that leans on the conversation: a question that stands on its own,
        # in English too, is searched as it is (the multilingual model matches it with the Dutch articles;
        # eval/README.md has the measurement)
        if turn.use_llm and turn.history and needs_context(turn.question):
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

    def _extractive(self, turn: Turn, *, force_uncertain: bool = False,
                    flags: list | None = None) -> Iterator[StreamEvent]:
        """4a. Generate without an LLM: the best sentences, quoted and cited; 5. the same check as an LLM's
        answer decides whether they answer the question (said to be the closest ones when they do not, or
        when the decide step is uncertain)."""
        ex = self.extractor.answer(turn.queries, turn.hits, turn.ranked)
        text, citations, verification = self._verified(turn, ex.text, ex.citations, extractive=True)
        if not verification.answers_question:  # a close runner-up that does answer goes first
            alt = self._answering_sentence(turn)
            if alt is not None:
                ranked = [alt] + [r for r in turn.ranked if r is not alt]
                ex = self.extractor.answer(turn.queries, turn.hits, ranked)
                text, citations, verification = self._verified(turn, ex.text, ex.citations, extractive=True)
        verification.flags = list(flags or [])
        support = turn.decision.support
        if support == "answered" and (force_uncertain or not verification.answers_question):
            support = "uncertain"
            if not verification.answers_question:
                turn.warnings.append("not verified: " + "; ".join(verification.reasons()[:2]))
        if support != "answered":
            opening = f"{lead(UNCERTAIN_LEAD, turn.lang)}\n\n"
            text = opening + text
            verification.shift(len(opening))
        for piece in pieces(text):
            yield StreamEvent("token", piece)
        yield self._done(turn, text, "extractive", citations, support=support, verification=verification)

    def _answering_sentence(self, turn: Turn):
        """The best-ranked sentence, among those close to the best (``RUNNER_UP_SHARE`` of its score, the
        first ``RUNNER_UPS``), that answers the question on its own (``rag.answer.verify``), or None."""
        if not turn.ranked:
            return None
        floor = RUNNER_UP_SHARE * turn.ranked[0].score
        for s in turn.ranked[1:RUNNER_UPS + 1]:
            if s.score < floor:
                break
            one = f"> {s.text} [1]"
            hit = Hit(chunk=s.hit.chunk, score=s.hit.score, rank=1)
            if self.verifier.check(self._question(turn), one, [hit], lang=turn.lang, extractive=True).answers_question:
                return s
        return None

    @staticmethod
    def _question(turn: Turn) -> str:
        return turn.rewrite.standalone if turn.rewrite else turn.question

    def _verified(self, turn: Turn, text: str, citations: list[Citation], *, extractive: bool,
                  raw: str | None = None, prompt_passages: list[Hit] | None = None):
        """5. The text with its citations numbered as shown, and the verdict on every sentence
        (``rag.answer.verify``); for a model's answer, the degenerate-output flags of what it wrote."""
        text, citations = renumber(text, citations)
        given = [Hit(chunk=Chunk(chunk_id=c.chunk_id, doc_id=c.doc_id, title=c.title, text=c.text, start=c.start,
                                 end=c.end, page=c.page, date=c.date), score=1.0, rank=c.n) for c in citations]
        verification = self.verifier.check(self._question(turn), text, given, lang=turn.lang,
                                           extractive=extractive, flags=False,
                                           ranked=None if extractive else turn.ranked)
        if not extractive:
            verification.flags = degenerate(raw if raw is not None else text,
                                            [h.chunk.text for h in (prompt_passages or given)], turn.lang)
        return text, citations, verification

    def _done(self, turn: Turn, text: str, generator: str, citations: list[Citation], *, support: str,
              reason: str | None = None, verification: Verification | None = None) -> StreamEvent:
        """The final Answer: citations renumbered in the order the text cites them."""
        abstained = support == "abstained"
        if not abstained:
            text, citations = renumber(text, citations)
            text = only_citations(text, {c.n for c in citations})
        turn.timings["generation_ms"] = (time.perf_counter() - turn.started) * 1000
        return StreamEvent("done", Answer(
            question=turn.question, answer=text, abstained=abstained, generator=generator,
            citations=[] if abstained else citations, sources=[] if abstained else turn.hits,
            timings=dict(turn.timings), standalone_question=turn.standalone,
            warnings=list(dict.fromkeys(turn.warnings)), queries=turn.queries, relevance=turn.relevance,
            abstain_reason=reason, support=support,
            verdicts=[v.to_dict() for v in verification.verdicts] if verification and not abstained else [],
            flags=[f.to_dict() for f in verification.flags] if verification else []))
