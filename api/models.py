"""Response models: the JSON each endpoint returns, so ``/docs`` (OpenAPI) shows its schema.

The objects are the same as the CLI's ``--json`` output (``Hit.to_dict``, ``Answer.to_dict``);
these models describe them, field by field, in the same order."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class HitOut(BaseModel):
    rank: int
    score: float
    doc_id: str
    title: str
    text: str = Field(description="the passage: document text[start:end]")
    start: int
    end: int
    chunk_id: str
    bm25_score: float | None = None
    dense_score: float | None = None


class SearchOut(BaseModel):
    results: list[HitOut]


class CitationOut(BaseModel):
    n: int = Field(description="the number used in the answer text: [n]")
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    chunk_id: str = ""
    attached: bool = Field(False, description="added by the citation checker to an uncited sentence")


class AnswerOut(BaseModel):
    answer: str = Field(description="the checked answer text, with [n] citations")
    abstained: bool
    generator: str = Field(description="ollama | extractive: who answered")
    citations: list[CitationOut]
    sources: list[HitOut]
    timings: dict[str, float]
    question: str
    standalone_question: str | None = None
    warnings: list[str]
    queries: list[str]
    relevance: float | None = None
    abstain_reason: str | None = Field(None, description="retrieval | model, when abstained")


class OllamaOut(BaseModel):
    reachable: bool
    model: str
    model_available: bool
    detail: str
    host: str


class IndexOut(BaseModel):
    version: str
    created_at: str | None = None


class BusyOut(BaseModel):
    running: int
    waiting: int
    max_concurrent: int
    max_queued: int


class SearchesOut(BaseModel):
    running: int
    max_concurrent: int


class StoreOut(BaseModel):
    kind: str = Field(description="local | postgres (RAG_STORE)")
    reachable: bool
    detail: str | None = Field(None, description="why the store does not answer (status 'degraded')")


class HealthOut(BaseModel):
    status: str = Field(description="ok | degraded (the store does not answer) | starting")
    documents: int
    chunks: int
    embedding_model: str | None = None
    configured_embedding_model: str
    embedding_fallback: str | None = None
    generator: str
    configured_generator: str
    ollama: OllamaOut
    index: IndexOut | None = None
    busy: BusyOut = Field(description="LLM answers running and waiting")
    searches: SearchesOut
    store: StoreOut | None = None


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    path: str
    metadata: dict[str, Any]
    chunks: int
    chars: int


class DocumentsOut(BaseModel):
    documents: list[DocumentSummary]
    count: int


class ChunkSpan(BaseModel):
    chunk_id: str
    start: int
    end: int


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    path: str
    metadata: dict[str, Any]
    text: str
    sha256: str
    chunks: list[ChunkSpan]


class ReindexOut(BaseModel):
    status: str
    documents: int
    chunks: int
    report: dict[str, Any] = Field(description="what the build did (rag index --json)")
