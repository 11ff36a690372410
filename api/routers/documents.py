"""GET /api/documents and /api/documents/{doc_id}: the indexed articles."""

from __future__ import annotations

from fastapi import APIRouter

from rag.errors import DocumentNotFound

from ..deps import StateDep
from ..models import DocumentOut, DocumentsOut

router = APIRouter(tags=["api"])


@router.get("/api/documents", response_model=DocumentsOut)
async def documents(st: StateDep) -> dict:
    """The indexed articles: id, title, path, metadata and number of chunks."""
    store = st.runtime.store
    docs = [
        {"doc_id": d.doc_id, "title": d.title, "path": d.path, "metadata": d.metadata,
         "chunks": len(store.chunk_indices(d.doc_id)), "chars": len(d.text)}
        for d in store.documents.values()
    ]
    return {"documents": docs, "count": len(docs)}


@router.get("/api/documents/{doc_id:path}", response_model=DocumentOut, responses={404: {"description": "no such document"}})
async def document(doc_id: str, st: StateDep) -> dict:
    """One article: its full text and metadata, and where its chunks are in the text."""
    store = st.runtime.store
    d = store.documents.get(doc_id)
    if d is None:
        raise DocumentNotFound(f"no document with id '{doc_id}'")
    chunks = [store.chunks[i] for i in store.chunk_indices(doc_id)]
    return {
        "doc_id": d.doc_id, "title": d.title, "path": d.path, "metadata": d.metadata, "text": d.text,
        "sha256": d.sha256,
        "chunks": [{"chunk_id": c.chunk_id, "start": c.start, "end": c.end} for c in chunks],
    }
