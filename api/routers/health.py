"""GET /health: counts, models, whether Ollama answers, and how busy the server is."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import AppState
from ..models import HealthOut

router = APIRouter(tags=["status"])


@router.get("/health", response_model=HealthOut)
async def health(request: Request) -> dict:
    """Counts, models, and whether Ollama answers (cached a few seconds; never slow)."""
    st: AppState = request.app.state.rag
    settings, rt = st.settings, st.runtime
    status = await st.status.get() if st.status is not None else None
    ollama_ok = bool(status and status.reachable and status.model_available)
    embedder = rt.embedder if rt else None
    return {
        "status": "ok" if rt is not None else "starting",
        "documents": len(rt.store.documents) if rt else 0,
        "chunks": len(rt.store.chunks) if rt else 0,
        "embedding_model": embedder.model_id if embedder else None,
        "configured_embedding_model": settings.embed_model,
        "embedding_fallback": embedder.fallback_reason if embedder else None,
        "embedding_backend": getattr(embedder, "backend", None) if embedder else None,
        "embedding_source": getattr(embedder, "source", None) if embedder else None,
        "generator": "ollama" if ollama_ok else "extractive",
        "configured_generator": settings.generator,
        "ollama": {
            "reachable": bool(status and status.reachable),
            "model": status.model if status else settings.llm_model,
            "model_available": bool(status and status.model_available),
            "detail": status.detail if status else "no LLM configured",
            "host": settings.ollama_host,
        },
        "index": {"version": rt.store.path.name, "created_at": rt.store.manifest.get("created_at")} if rt else None,
        "busy": {"running": st.gate.active, "waiting": st.gate.waiting,
                 "max_concurrent": st.gate.limit, "max_queued": st.gate.max_queued},
        "searches": {"running": st.searches.active, "max_concurrent": st.searches.limit},
    }
