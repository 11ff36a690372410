"""GET /health: counts, models, whether Ollama answers, and how busy the server is."""

from __future__ import annotations

from fastapi import APIRouter, Request

from rag.llms.registry import backend_name, server_url

from ..deps import AppState
from ..models import HealthOut

router = APIRouter(tags=["status"])


@router.get("/health", response_model=HealthOut)
async def health(request: Request) -> dict:
    """Counts, models, and whether Ollama answers; the LLM's and a database's state are checked in the
    background and cached, so this answers at once even when they do not (``store.age_s``)."""
    st: AppState = request.app.state.rag.now()  # one version for the whole answer
    settings, rt = st.settings, st.runtime
    status = await st.status.get() if st.status is not None else None
    ollama_ok = bool(status and status.reachable and status.model_available)
    backend = getattr(st.llm, "name", None) or backend_name(settings)
    embedder = rt.embedder if rt else None
    counts = await st.store_health.get(rt.store) if rt else {}  # never waits on a database
    if counts.get("index") is not None and st.live is not None:
        counts["index"].update(loaded_at=st.snapshot.loaded_at, reload_error=st.live.reload_error)
    return {
        "status": "starting" if rt is None else "degraded" if counts["store"]["detail"] else "ok",
        "documents": counts.get("documents", 0),
        "chunks": counts.get("chunks", 0),
        "embedding_model": embedder.model_id if embedder else None,
        "configured_embedding_model": settings.embed_model,
        "embedding_fallback": embedder.fallback_reason if embedder else None,
        "embedding_backend": getattr(embedder, "backend", None) if embedder else None,
        "embedding_source": getattr(embedder, "source", None) if embedder else None,
        "generator": backend if ollama_ok else "extractive",
        "configured_generator": settings.generator,
        "ollama": {  # (the configured LLM, whichever its backend: the name stays for existing clients)
            "reachable": bool(status and status.reachable),
            "model": status.model if status else settings.llm_model,
            "model_available": bool(status and status.model_available),
            "detail": status.detail if status else "no LLM configured",
            "host": getattr(st.llm, "host", None) or server_url(settings, backend),
            "backend": backend,
        },
        "index": counts.get("index"),
        "store": counts.get("store"),
        "busy": {"running": st.gate.active, "waiting": st.gate.waiting,
                 "max_concurrent": st.gate.limit, "max_queued": st.gate.max_queued},
        "searches": {"running": st.searches.active, "max_concurrent": st.searches.limit},
        "uploads": bool(settings.api_key),  # adding articles over HTTP needs RAG_API_KEY (api/uploads.py)
    }
