"""POST /api/reindex: update the index from the data folder and swap it in (only with RAG_API_KEY)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, HTTPException, Request

from rag.errors import IndexNotFound

from ..deps import ApiKeyDep, AppState
from ..models import ReindexOut

router = APIRouter(tags=["admin"])


@router.post("/api/reindex", response_model=ReindexOut, responses={
    401: {"description": "missing or wrong API key"},
    403: {"description": "re-indexing over HTTP is off (no RAG_API_KEY)"},
    409: {"description": "a re-index is already running"},
})
async def reindex(_: ApiKeyDep, request: Request) -> dict:
    """Update the index from the data folder (only changed files are embedded) and swap it in.
    It embeds with the server's embedder, whose lock it shares with the searches running meanwhile."""
    st: AppState = request.app.state.rag.now()
    if st.runtime is None:
        raise IndexNotFound("the index is not loaded yet; try again in a moment")
    lock = st.admin_lock()
    if lock.locked():
        raise HTTPException(409, "a re-index is already running; try again when it has finished")
    async with lock:
        report, new, pipeline = await anyio.to_thread.run_sync(st.rebuild)
        st.runtime, st.pipeline = new, pipeline  # requests already running keep the old ones
    return {"status": "ok", "documents": len(new.store.documents), "chunks": len(new.store.chunks),
            "report": report.to_dict()}
