"""``rag info``: what is indexed, and with which models (a JSON-ready report; rag/cli/output.py prints it)."""

from __future__ import annotations

import logging
from pathlib import Path

from rag.config import Settings


def info_report(settings: Settings) -> dict:
    from rag.embed.lazy import lazy_embedder
    from rag.index.local.store import active_version, load_manifest, model_difference
    from rag.index.stores import fusion_settings, postgres_index_info

    quiet = logging.getLogger("rag.embed.embedders")
    level, quiet.level = quiet.level, logging.ERROR  # the fallback is printed once, below
    try:
        embedder = lazy_embedder(settings)  # named, not loaded, when files say which it is (rag.embed.lazy)
    finally:
        quiet.setLevel(level)
    report: dict = {
        "data_dir": str(settings.data_dir),
        "index_dir": str(settings.index_dir),
        "embedding": {
            "configured": settings.embed_model, "loaded": embedder.model_id, "dimension": embedder.dimension,
            "backend": getattr(embedder, "backend", None), "source": getattr(embedder, "source", None),
            "max_tokens": embedder.max_tokens, "fallback": embedder.fallback_reason is not None,
            "fallback_reason": embedder.fallback_reason,
        },
        "retrieval": {"mode": settings.mode, "fusion": settings.fusion, **fusion_settings(settings),
                      "bm25_language": settings.bm25_language,
                      **({"rrf_k": settings.rrf_k} if settings.fusion == "rrf" else {})},
        "llm": _llm_info(settings),
    }
    version = active_version(Path(settings.index_dir))
    if settings.store == "postgres":  # the index is in the database (rag/index/stores.py)
        report["store"], report["index"] = "postgres", postgres_index_info(settings, embedder)
    elif version is None:
        report["index"] = None
    else:
        m = load_manifest(Path(settings.index_dir))
        report["index"] = {
            "path": str(version), "created_at": m["created_at"], "documents": m["counts"]["documents"],
            "chunks": m["counts"]["chunks"], "embedding_model": m["embedding"]["model_id"],
            "embedding_backend": m["embedding"].get("backend", "sentence-transformers"),
            "embedding_fallback_reason": m["embedding"].get("fallback_reason"), "dimension": m["embedding"]["dimension"],
            "chunking": m["chunking"], "bm25": m["bm25"], "faiss": m["faiss"], "skipped": m.get("skipped", []),
            "matches_loaded_model": model_difference(m, embedder) is None,
            "files": {p: f["doc_id"] for p, f in m["files"].items()},
        }
    return report


def _llm_info(settings: Settings) -> dict | None:
    from rag.llms.registry import backend_name, make_llm, server_url

    name = backend_name(settings)
    llm = make_llm(settings, name)
    try:
        st = llm.status()
    finally:
        llm.close()
    return {"backend": name, "host": server_url(settings, name), "model": settings.llm_model,
            "reachable": st.reachable, "model_available": st.model_available, "detail": st.detail}
