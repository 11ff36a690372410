"""POST /api/ask: an answer with cited passages (= ``rag ask --json``), or Server-Sent Events.

The route decides the generator once (``rag.answer.choice``), takes an LLM slot when the LLM will be
called, and pins that decision on the pipeline for this request, so an ``auto`` ask that calls
Ollama always holds a slot. A client that leaves cancels its LLM call and frees its slot."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request

from rag.answer.choice import choose_generator
from rag.contract import AskRequest, check_length

from ..answering import CancellableLLM, next_event, run_until_disconnected, stream_answer, stream_deadline
from ..deps import PipelineDep, StateDep
from ..gates import NO_GATE
from ..models import AnswerOut

router = APIRouter(tags=["api"])


@router.post("/api/ask", response_model=AnswerOut, responses={
    200: {"description": "the answer (JSON), or Server-Sent Events when streaming",
          "content": {"application/json": {}, "text/event-stream": {}}},
    503: {"description": "busy (Retry-After), index missing or LLM unavailable"},
})
async def ask(body: AskRequest, request: Request, st: StateDep, pipeline: PipelineDep,
              accept: Annotated[str | None, Header()] = None):
    """Answer a question with cited passages (same object as ``rag ask --json``).

    With ``"stream": true`` (or ``Accept: text/event-stream``) the reply is SSE:
    ``sources`` ({"sources": [...]}) then ``token`` ({"text": ...}) pieces, then ``done``
    (the answer object), or ``error`` ({"message": ...})."""
    check_length(body.question, st.settings.max_question_chars)
    req = body.with_defaults(st.settings)
    kwargs = dict(k=req.k, mode=req.mode, generator=req.generator, history=req.history_dicts())
    streaming = req.stream if req.stream is not None else "text/event-stream" in (accept or "")

    choice = await anyio.to_thread.run_sync(choose_generator, pipeline.llm, req.generator)
    gate = st.gate if choice.use_llm else NO_GATE  # extractive answers are cheap: no slot
    await gate.acquire()
    pinned = pipeline.with_choice(choice)
    llm = pinned.llm = CancellableLLM(pipeline.llm) if pipeline.llm is not None else None
    stop = llm.cancel if llm else (lambda: None)
    if not streaming:  # (the SSE response cancels the LLM itself when the client leaves)
        work = lambda: pinned.ask(req.question, **kwargs)  # noqa: E731
        try:
            if choice.use_llm:  # mostly waiting for Ollama, behind the LLM gate
                answer = await run_until_disconnected(request, work, on_disconnect=stop)
            else:  # all CPU (search, sentence ranking): admitted and run like a search, on the search
                # threads, so /health and static files never queue behind it
                answer = await run_until_disconnected(request, work, on_disconnect=stop, runner=st.searches.run)
        finally:
            gate.release()
        return answer.to_dict()

    try:
        gen = pinned.ask_stream(req.question, **kwargs)
        # the first event decides the status: errors before it get a normal error response
        first = await anyio.to_thread.run_sync(next_event, gen)
    except BaseException:
        gate.release()
        raise
    # the stream may run RAG_LLM_TIMEOUT (+1 s) from here: a client that stops reading is cut then
    return stream_answer(gen, first, gate.release, cancel=stop, deadline=stream_deadline(st.settings.llm_timeout))
