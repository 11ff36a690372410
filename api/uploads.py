"""Adding and removing articles over HTTP (the chat page's upload box uses these).

    POST   /api/documents            multipart form, field ``file``: add one article (.md .txt .html .pdf .docx)
    DELETE /api/documents/{doc_id}   remove one article

A refusal is JSON ``{"detail": message, "error": kind, "code": ...}``; ``code`` is stable (``empty_file``,
``binary_file``, ``not_text``, ``no_text``, ``unsupported_type``, ``too_large``, ``bad_name``,
``duplicate``, ``not_an_article``, ``not_indexed``, ``last_article``, ``api_key_required``,
``uploads_off``) so the page can word it in Dutch or English.

Both are admin actions behind ``RAG_API_KEY``, sent as ``Authorization: Bearer <key>`` (or
``X-API-Key``) like ``/api/reindex``; never a cookie, so a page on another site cannot use a
visitor's browser to change the archive. Without ``RAG_API_KEY`` both answer 403 with a message.

The file is checked (name, type, size, duplicate, readable) before it enters the data folder
(``rag.ingest.add``), the index is updated incrementally, and the new index is swapped in before the
response: the article is searchable when the request returns. When the update fails, the
change to the data folder is undone. Removing moves the file to ``<data>/.removed/`` (hidden
folders are not indexed), so nothing is lost by a wrong click.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Request, UploadFile

from .deps import ApiKeyDep, AppState
from rag.ingest.add import AddRefused, Added, store_bytes
from rag.errors import BuildCancelled, DocumentNotFound, IndexNotFound
from rag.ingest.limits import ParseLimits

log = logging.getLogger(__name__)

router = APIRouter(tags=["admin"])
UPLOAD_PATH = "/api/documents"
REMOVED_DIR = ".removed"
FORM_OVERHEAD = 64_000  # multipart headers and boundaries on top of the file itself


def _admin_state(request: Request, _: ApiKeyDep) -> AppState:
    st: AppState = request.app.state.rag.now()  # the version served now (the lock serialises the changes)
    if st.runtime is None:
        raise IndexNotFound("the index is not loaded yet; try again in a moment")
    return st


AdminDep = Annotated[AppState, Depends(_admin_state)]


def _stopping(st: AppState, e: BaseException, what: str) -> None:
    """A change cut short by the server's shutdown (SIGTERM) answers 503 saying so, not 500."""
    if st.stopping.is_set() and not isinstance(e, BuildCancelled):
        raise BuildCancelled(f"the server is shutting down: {what} (the index was left as it was)") from e


def _doc_summary(store, doc_id: str) -> dict[str, Any]:
    d = store.documents[doc_id]
    return {"doc_id": d.doc_id, "title": d.title, "path": d.path, "metadata": d.metadata,
            "chunks": len(store.chunk_indices(doc_id)), "chars": len(d.text)}


def not_indexed(path: str, report: Any) -> AddRefused:
    """The refusal for a file the build skipped after all (e.g. too many passages for its size), with its reason."""
    reason = next((s.reason for s in getattr(report, "skipped", []) if s.path == path), None)
    if reason is None:
        return AddRefused(f"'{path}' was not indexed", 422, "not_indexed")
    too_large = reason.startswith("too large")
    return AddRefused(f"'{path}' cannot be used as an article: {reason}", 413 if too_large else 422,
                      "too_large" if too_large else "not_indexed")


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
    async with st.admin_lock_or_409():
        added: Added = await anyio.to_thread.run_sync(  # AddRefused -> its status and code (api/errors.py)
            lambda: store_bytes(Path(settings.data_dir), name, data, settings.max_file_bytes,
                                limits=ParseLimits.from_settings(settings)))
        try:
            report, new, pipeline = await anyio.to_thread.run_sync(st.rebuild)
            if added.doc_id not in new.store.documents:
                raise not_indexed(added.path, report)
        except BaseException as e:
            (Path(settings.data_dir) / added.path).unlink(missing_ok=True)  # undo: the archive stays as it was
            _stopping(st, e, f"'{added.path}' was not added")
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
    async with st.admin_lock_or_409():
        st = st.now()  # the version served once the lock is ours (a change may have come meanwhile)
        doc = st.runtime.store.documents.get(doc_id)
        if doc is None:
            raise DocumentNotFound(f"no document with id '{doc_id}'")
        src = (data_dir / doc.path).resolve()
        if not src.is_relative_to(data_dir) or not src.is_file():
            raise DocumentNotFound(f"the file of '{doc_id}' ({doc.path}) is not in the data folder")
        if len(st.runtime.store.documents) == 1:
            raise AddRefused("this is the last article; the index cannot be empty", 409, "last_article")
        dest = data_dir / REMOVED_DIR / f"{time.strftime('%Y%m%dT%H%M%S')}-{src.name}"
        dest.parent.mkdir(exist_ok=True)
        shutil.move(src, dest)
        try:
            report, new, pipeline = await anyio.to_thread.run_sync(st.rebuild)
        except BaseException as e:
            shutil.move(dest, src)  # undo
            _stopping(st, e, f"'{doc.path}' was not removed")
            raise
        st.runtime, st.pipeline = new, pipeline
    log.info("removed %s (%s), kept in %s", doc.path, doc_id, dest)
    return {"status": "ok", "removed": {"doc_id": doc_id, "title": doc.title, "path": doc.path},
            "kept_as": dest.relative_to(data_dir).as_posix(),
            "documents": len(new.store.documents), "chunks": len(new.store.chunks)}
