"""4b. Generate with the LLM, then 5. check what it wrote: the part of the pipeline that calls the model.

The model reads the passages ``rag.answer.context`` builds (the sentences that answer, not whole chunks) in
the prompt of ``rag.answer.prompt``. Its stream is watched as it arrives: a model that repeats itself is
stopped (``rag.answer.degenerate.LoopGuard``) instead of writing until its token limit. Then:

1. a reply that says the passages do not answer is an abstention (``abstain_reason="model"``);
2. citations are checked (``rag.answer.check``: numbers of passages that were not given removed, uncited
   sentences given the passage that supports them), repeated sentences said once, and a sentence that
   cites a passage which does not say it, while another given passage does, cites that one instead
   (``Verifier.recite``; a warning names the change);
3. every sentence is verified against the passage it cites (``rag.answer.verify``): an answer with any
   sentence not supported, no sentence that answers the question, or degenerate output is ``uncertain``;
4. an answer with no sentence that its passages say (supported, or true but off the question) is replaced
   by the extractive answer (uncertain, with a warning that says why), so what is shown always rests on
   the passages.

Any LLM error falls back to the extractive answer in ``auto`` (and is raised when the LLM was asked for).
"""

from __future__ import annotations

from typing import Iterator

from rag.answer.check import check_citations, find_citations
from rag.answer.degenerate import Flag, LoopGuard, dedupe_sentences
from rag.answer.extractive import Extract
from rag.answer.prompt import Prompt, PromptTooLong, build_prompt, says_cannot_answer
from rag.answer.turn import BROKEN_SEPARATOR, StreamEvent, Turn, lead, pieces
from rag.answer.verdicts import Verification
from rag.contract import LLM_GENERATORS
from rag.errors import ConfigError, LLMError
from rag.llms.thinking import strip_thinking
from rag.schema import Hit


class LLMGeneration:
    """The LLM half of ``rag.answer.pipeline.Pipeline`` (which supplies ``llm``, ``settings``, ``scorer``,
    ``extractor``, ``_context``, ``_budget``, ``_extractive``, ``_verified`` and ``_done``)."""

    def _generate_with_llm(self, turn: Turn) -> Iterator[StreamEvent]:
        """4b. Generate with the LLM from the numbered passages; any LLM error falls back to 4a in ``auto``."""
        try:
            prompt = build_prompt(turn.rewrite.standalone, self._context(turn, self._budget()),
                                  num_ctx=self.settings.num_ctx, max_answer_tokens=self.settings.max_answer_tokens,
                                  language=turn.lang)
        except PromptTooLong as e:
            if turn.generator in LLM_GENERATORS:
                raise ConfigError(str(e)) from e
            turn.warnings.append(f"answered extractively: {e}")
            yield from self._extractive(turn)
            return
        turn.warnings.extend(prompt.warnings)
        got: list[str] = []
        guard = LoopGuard()
        try:
            for piece in self._llm_pieces(prompt, guard):
                got.append(piece)
                if turn.streaming:
                    yield StreamEvent("token", piece)
            text = strip_thinking("".join(got)).strip()  # (a lone </think> the template opened in the prompt)
            if not text:
                raise LLMError(f"the model {getattr(self.llm, 'model', '')} returned an empty answer")
        except LLMError as e:
            self._fall_back(turn, e)
            if turn.streaming and got:
                turn.warnings.append(f"the language model's answer broke off after {len(got)} piece(s) had "
                                     "been sent; the extractive answer was appended")
                yield from self._finish_broken(turn, "".join(got), prompt.passages)
            else:
                yield from self._extractive(turn)
            return
        if guard.flag is not None:
            turn.warnings.append(f"the language model repeated itself and was stopped ({guard.flag.detail})")
        yield from self._check_llm_answer(turn, text, prompt)

    def _llm_pieces(self, prompt: Prompt, guard: LoopGuard) -> Iterator[str]:
        """The model's pieces, until it ends or loops (then the stream is closed: the server stops too)."""
        stream = self.llm.stream_chat(prompt.messages, num_ctx=prompt.num_ctx,
                                      max_tokens=self.settings.max_answer_tokens)
        try:
            for piece in stream:
                yield piece
                if guard.add(piece):
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _check_llm_answer(self, turn: Turn, text: str, prompt: Prompt) -> Iterator[StreamEvent]:
        """5. Check: did the model decline? Are its citations real? Does each sentence say what its passage says?"""
        passages = prompt.passages
        model_cited = bool([n for _, _, ns in find_citations(text) for n in ns if 1 <= n <= len(passages)])
        if says_cannot_answer(text, cited=model_cited):
            yield self._done(turn, text, self._llm_name(), [], support="abstained", reason="model")
            return
        checked = check_citations(text, passages, self.scorer)
        turn.warnings.extend(w for w in checked.warnings if not w.startswith("sentence without a supporting"))
        shown, recited = self.verifier.recite(dedupe_sentences(checked.text), passages)
        turn.warnings.extend(recited)
        citations = checked.citations
        if recited:  # the citations of the corrected text
            citations = check_citations(shown, passages, self.scorer, attach=False).citations
        shown, citations, verification = self._verified(turn, shown, citations, extractive=False,
                                                        raw=text, prompt_passages=passages)
        if not verification.true_to_passages:
            why = "; ".join(verification.reasons()[:3]) or "no sentence of it is in the passages"
            turn.warnings.append(f"answered extractively: the language model's answer was not found in its "
                                 f"passages ({why})")
            flags = verification.flags + [Flag("no_supported_sentence", "no sentence of the model's answer is "
                                                                        "supported by the passage it cites")]
            yield from self._extractive(turn, force_uncertain=True, flags=flags)
            return
        turn.warnings.extend(f"not verified: {r}" for r in verification.reasons())
        done = self._done(turn, shown, self._llm_name(), citations, support=verification.support,
                          verification=verification)
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
        """Tokens were sent, then the LLM stream broke: append the extractive answer. Its citations are
        numbered after the prompt's passages, so the two parts never share a number."""
        ex: Extract = self.extractor.answer(turn.queries, turn.hits, turn.ranked)
        sep = lead(BROKEN_SEPARATOR, turn.lang)
        yield StreamEvent("token", sep)
        shift = len(passages)
        ex_text = _shift_citations(ex.text, shift)
        for piece in pieces(ex_text):
            yield StreamEvent("token", piece)
        checked = check_citations(partial, passages, self.scorer, attach=False)
        from dataclasses import replace

        citations = list(checked.citations) + [replace(c, n=c.n + shift) for c in ex.citations]
        text = checked.text.rstrip() + sep + ex_text
        text, citations, verification = self._verified(turn, text, citations, extractive=False)
        yield self._done(turn, text, "extractive", citations, support="uncertain", verification=verification)


def _shift_citations(text: str, shift: int) -> str:
    from rag.answer.check import CITE, format_group, parse_group

    return CITE.sub(lambda m: format_group([n + shift for n in parse_group(m.group(1))]), text)


__all__ = ["LLMGeneration", "Verification"]
