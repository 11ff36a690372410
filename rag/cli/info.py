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
        "in_force": values_in_force(settings),
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


SECRET = ("api_key", "openai_api_key")  # shown as set / not set, never their value


def values_in_force(settings: Settings) -> dict:
    """The settings a request or a build runs with (environment, flags and defaults resolved), grouped the
    way people look for them, and every setting under ``all`` (secrets only as set/not set, a database
    URL without its password)."""
    from rag.answer.decide import (LEXICAL_THRESHOLD, THRESHOLD_DUTCH, THRESHOLD_OTHER, UNCERTAIN_GAP,
                                   UNCERTAIN_TYPED_MARGIN)
    from rag.contract import MAX_K, MIN_K

    s = settings
    dutch = THRESHOLD_DUTCH if s.abstain_threshold is None else s.abstain_threshold
    values = {k: _shown(k, v) for k, v in s.model_dump().items()}
    return {
        "answers": {"top_k": s.top_k, "k_range": [MIN_K, MAX_K], "candidates": s.candidates, "mode": s.mode,
                    "generator": s.generator, "llm_model": s.llm_model, "num_ctx": s.num_ctx,
                    "max_answer_tokens": s.max_answer_tokens, "think": s.think, "temperature": s.temperature},
        "thresholds": {"abstain_dutch": dutch, "abstain_other": round(dutch - (THRESHOLD_DUTCH - THRESHOLD_OTHER), 4),
                       "abstain_calibrated": s.abstain_threshold is None, "abstain_bm25_overlap": LEXICAL_THRESHOLD,
                       "uncertain_gap": UNCERTAIN_GAP, "uncertain_typed_margin": UNCERTAIN_TYPED_MARGIN,
                       "hnsw_above_chunks": s.hnsw_threshold},
        "limits": {"max_question_chars": s.max_question_chars, "max_body_bytes": s.max_body_bytes,
                   "max_file_bytes": s.max_file_bytes, "max_json_depth": s.max_json_depth,
                   "parse_max_pages": s.parse_max_pages, "parse_max_paragraphs": s.parse_max_paragraphs,
                   "parse_max_nesting": s.parse_max_nesting, "parse_expand_ratio": s.parse_expand_ratio,
                   "parse_max_text_chars": s.parse_max_text_chars, "parse_memory_mb": s.parse_memory_mb},
        "timeouts_s": {"llm": s.llm_timeout, "llm_probe": s.llm_probe_timeout, "request_headers": s.header_timeout,
                       "request_body": s.body_timeout, "parse_file": s.parse_timeout, "build_lock": s.lock_timeout,
                       "database": s.db_timeout, "index_reload_interval": s.reload_interval},
        "concurrency": {"max_concurrent_llm": s.max_concurrent_llm, "max_queued": s.max_queued,
                        "max_concurrent_search": s.max_concurrent_search, "search_threads": s.search_threads,
                        "search_niceness": s.search_niceness, "workers": s.workers,
                        "embed_threads": s.embed_threads, "embed_call_threads": s.embed_call_threads},
        "server": {"host": s.host, "port": s.port, "allowed_hosts": s.trusted_hosts(),
                   "uploads_and_reindex": s.api_key is not None},
        "all": values,
    }


def _shown(key: str, value):
    if key in SECRET:
        return "set" if value else None
    if key == "database_url" and value:
        from urllib.parse import urlsplit, urlunsplit

        u = urlsplit(str(value))
        if u.password:
            u = u._replace(netloc=u.netloc.replace(f":{u.password}@", ":***@"))
        return urlunsplit(u)
    return str(value) if isinstance(value, Path) else value
