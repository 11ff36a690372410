"""GET /api/search: the passages that best match a query (= ``rag search --json``).

Searches are admitted by ``AppState.searches`` (at most ``RAG_MAX_CONCURRENT_SEARCH`` at once, then
503) and run on its own threads (``RAG_SEARCH_THREADS``), never in the pool the other routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from rag.contract import SearchRequest, check_length

from ..deps import StateDep
from ..models import SearchOut

router = APIRouter(tags=["api"])


@router.get("/api/search", response_model=SearchOut, responses={503: {"description": "too many searches at once"}})
async def search(st: StateDep, req: Annotated[SearchRequest, Query()]) -> dict:
    """The passages that best match ``q`` (same object as ``rag search --json``)."""
    check_length(req.q, st.settings.max_question_chars, "query")
    req = req.with_defaults(st.settings)
    retriever = st.runtime.retriever
    hits = await st.searches.run(lambda: retriever.search(req.q, k=req.k, mode=req.mode))
    return {"results": [h.to_dict() for h in hits]}
