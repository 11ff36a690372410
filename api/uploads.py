"""Adding and removing articles over HTTP (the chat page's upload box uses these).

    POST   /api/documents            multipart form, field ``file``: add one article (.md .txt .html .pdf .docx)
    DELETE /api/documents/{doc_id}   remove one article

Both are admin actions behind ``RAG_API_KEY``, sent as ``Authorization: Bearer <key>`` (or
``X-API-Key``) like ``/api/reindex``; never a cookie, so a page on another site cannot use a
visitor's browser to change the archive. Without ``RAG_API_KEY`` both answer 403 with a message.

The file is checked (name, type, size, duplicate, readable) before it enters the data folder
(``rag.add``), the index is updated incrementally, and the new index is swapped in before the
response: the article is searchable when the request returns. When the update fails, the
change to the data folder is undone. Removing moves the file to ``<data>/.removed/`` (hidden
folders are not indexed), so nothing is lost by a wrong click.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Header, HTTPException, Request, UploadFile
from starlette.types import Receive, Scope, Send

from api.app import AppState, BodyLimitMiddleware
from rag.add import AddRefused, Added, store_bytes
from rag.errors import DocumentNotFound, IndexNotFound

log = logging.getLogger(__name__)

router = APIRouter(tags=["admin"])
UPLOAD_PATH = "/api/documents"
REMOVED_DIR = ".removed"
FORM_OVERHEAD = 64_000  # multipart headers and boundaries on top of the file itself


class UploadBodyLimit(BodyLimitMiddleware):
    """The app's body limit, with room for one article file on ``POST /api/documents``."""

    def __init__(self, app, max_bytes: int, upload_bytes: int) -> None:
        super().__init__(app, max_bytes)
        self.upload = BodyLimitMiddleware(app, upload_bytes + FORM_OVERHEAD)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope.get("path") == UPLOAD_PATH:
            return await self.upload(scope, receive, send)
        return await super().__call__(scope, receive, send)


def require_admin_key(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> AppState:
    st: AppState = request.app.state.rag
    expected = st.settings.api_key
    if not expected:
        raise HTTPException(403, "adding and removing articles over HTTP is off: start the server with RAG_API_KEY "
                                 "set to enable it (or use `rag add`)")
    given = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "a valid API key is required (header 'Authorization: Bearer <key>' or 'X-API-Key')",
                            headers={"WWW-Authenticate": "Bearer"})
    if st.runtime is None:
        raise IndexNotFound("the index is not loaded yet; try again in a moment")
    return st


AdminDep = Annotated[AppState, Depends(require_admin_key)]


async def _locked(st: AppState):
    if st.reindex_lock is None:
        st.reindex_lock = asyncio.Lock()
    return st.reindex_lock


def _rebuild(st: AppState):
    """Update the index from the data folder and load it (in a worker thread)."""
    from rag.runtime import build, open_runtime

    old = st.runtime
    report = build(st.settings, old.embedder)
    new = open_runtime(st.settings, embedder=old.embedder)
    try:
        pipeline = st.make_pipeline(new)
    except ImportError:
        pipeline = None
    return report, new, pipeline


def _doc_summary(store, doc_id: str) -> dict[str, Any]:
    d = store.documents[doc_id]
    return {"doc_id": d.doc_id, "title": d.title, "path": d.path, "metadata": d.metadata,
            "chunks": len(store.chunk_indices(doc_id)), "chars": len(d.text)}


@router.post(UPLOAD_PATH, status_code=201, responses={
    401: {"description": "missing or wrong API key"}, 403: {"description": "uploads are off (no RAG_API_KEY)"},
    409: {"description": "the file (or its name) is already there"}, 413: {"description": "too large"},
    415: {"description": "unsupported file type"}, 422: {"description": "not usable as an article"},
})
async def upload_document(st: AdminDep, file: Annotated[UploadFile, File(description="the article file")]) -> dict[str, Any]:
    """Add an article file to the data folder and the index; it is searchable when this returns."""
    settings = st.settings
    data = await file.read(settings.max_file_bytes + 1)
    name = file.filename or ""
    async with await _locked(st):
        try:
            added: Added = await anyio.to_thread.run_sync(
                lambda: store_bytes(Path(settings.data_dir), name, data, settings.max_file_bytes))
        except AddRefused as e:
            raise HTTPException(e.status, str(e)) from None
        try:
            report, new, pipeline = await anyio.to_thread.run_sync(lambda: _rebuild(st))
            if added.doc_id not in new.store.documents:
                raise AddRefused(f"'{added.path}' was not indexed", 422)
        except BaseException as e:
            (Path(settings.data_dir) / added.path).unlink(missing_ok=True)  # undo: the archive stays as it was
            if isinstance(e, AddRefused):
                raise HTTPException(e.status, str(e)) from None
            raise
        st.runtime, st.pipeline = new, pipeline
    log.info("added %s (%s)", added.path, added.doc_id)
    return {"status": "ok", "document": _doc_summary(new.store, added.doc_id),
            "documents": len(new.store.documents), "chunks": len(new.store.chunks),
            "embedded_chunks": report.embedded_chunks}


@router.delete(UPLOAD_PATH + "/{doc_id}", responses={
    401: {"description": "missing or wrong API key"}, 403: {"description": "removing is off (no RAG_API_KEY)"},
    404: {"description": "no such article"},
})
async def delete_document(doc_id: str, st: AdminDep) -> dict[str, Any]:
    """Remove an article from the index; its file moves to ``<data>/.removed/``."""
    data_dir = Path(st.settings.data_dir).resolve()
    async with await _locked(st):
        doc = st.runtime.store.documents.get(doc_id)
        if doc is None:
            raise DocumentNotFound(f"no document with id '{doc_id}'")
        src = (data_dir / doc.path).resolve()
        if not src.is_relative_to(data_dir) or not src.is_file():
            raise DocumentNotFound(f"the file of '{doc_id}' ({doc.path}) is not in the data folder")
        if len(st.runtime.store.documents) == 1:
            raise HTTPException(409, "this is the last article; the index cannot be empty")
        dest = data_dir / REMOVED_DIR / f"{time.strftime('%Y%m%dT%H%M%S')}-{src.name}"
        dest.parent.mkdir(exist_ok=True)
        shutil.move(src, dest)
        try:
            report, new, pipeline = await anyio.to_thread.run_sync(lambda: _rebuild(st))
        except BaseException:
            shutil.move(dest, src)  # undo
            raise
        st.runtime, st.pipeline = new, pipeline
    log.info("removed %s (%s), kept in %s", doc.path, doc_id, dest)
    return {"status": "ok", "removed": {"doc_id": doc_id, "title": doc.title, "path": doc.path},
            "kept_as": dest.relative_to(data_dir).as_posix(),
            "documents": len(new.store.documents), "chunks": len(new.store.chunks)}
