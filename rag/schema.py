"""The data that flows through the system: documents, chunks, hits, answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    doc_id: str  # stable: derived from the path relative to the data folder
    path: str  # relative path, POSIX style
    title: str
    text: str  # the text that chunk offsets point into
    metadata: dict[str, Any] = field(default_factory=dict)  # front matter: date, url, author ...
    sha256: str = ""  # hash of the file's bytes


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # f"{doc_id}#{ordinal}"
    doc_id: str
    title: str
    text: str  # == document.text[start:end]
    start: int
    end: int
    ordinal: int = 0
    page: int | None = None  # PDF page (from 1) where the chunk starts; None for other documents
    date: str | None = None  # the article's publication date, ISO (rag/ingest/pubdate.py); None when unknown
    date_source: str | None = None  # where the date was found: front_matter | text | byline | file_property

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Chunk":
        return cls(**{k: d[k] for k in ("chunk_id", "doc_id", "title", "text", "start", "end", "ordinal")},
                   page=d.get("page"), date=d.get("date"),  # indexes from before the date: None
                   date_source=d.get("date_source"))


@dataclass
class Hit:
    chunk: Chunk
    score: float
    rank: int = 0
    bm25_score: float | None = None  # raw BM25 score, when BM25 saw this chunk
    dense_score: float | None = None  # cosine similarity, when the dense search saw this chunk

    def to_dict(self) -> dict[str, Any]:
        """The public form (``rag search --json``, ``/api/search``)."""
        c = self.chunk
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "doc_id": c.doc_id,
            "title": c.title,
            "text": c.text,
            "start": c.start,
            "end": c.end,
            "chunk_id": c.chunk_id,
            "date": c.date,
            "date_source": c.date_source,
            "bm25_score": None if self.bm25_score is None else round(float(self.bm25_score), 6),
            "dense_score": None if self.dense_score is None else round(float(self.dense_score), 6),
        }


@dataclass
class Citation:
    n: int  # the number used in the answer text: [n]
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    chunk_id: str = ""
    attached: bool = False  # True when added by the checker to an uncited sentence, not written by the model
    page: int | None = None  # PDF page of the passage
    # the quoted sentences inside the passage, as document offsets ({"start", "end"}): what the page highlights
    quotes: list[dict[str, int]] = field(default_factory=list)
    date: str | None = None  # the article's publication date, ISO, when known
    date_source: str | None = None  # where the date was found (rag/ingest/pubdate.py DATE_SOURCES)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    generator: str  # "ollama" | "openai" | "extractive"
    citations: list[Citation] = field(default_factory=list)
    sources: list[Hit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # retrieval_ms, generation_ms
    standalone_question: str | None = None  # the rewritten follow-up question, when history was given
    warnings: list[str] = field(default_factory=list)  # removed citations, fallback reasons, unsupported sentences
    # --- added with the answering pipeline (rag/answer/pipeline.py)
    queries: list[str] = field(default_factory=list)  # what retrieval searched with (standalone question, Dutch phrasing)
    relevance: float | None = None  # abstention signal: best sentence's lexical overlap with the question (0..1)
    abstain_reason: str | None = None  # "retrieval" (nothing relevant enough) | "model" (the LLM said it can't answer)
    support: str = ""  # "answered" | "uncertain" | "abstained" (rag/answer/decide.py); "" = derived from ``abstained``
    # --- added with the sentence check (rag/answer/verify.py, rag/answer/degenerate.py)
    verdicts: list[dict] = field(default_factory=list)  # one per sentence: supported | unsupported | off_question
    flags: list[dict] = field(default_factory=list)  # degenerate output found in the model's answer: {reason, detail}

    def __post_init__(self) -> None:
        if not self.support:
            self.support = "abstained" if self.abstained else "answered"

    def to_dict(self) -> dict[str, Any]:
        """The public form (``rag ask --json``, ``/api/ask``)."""
        return {
            "answer": self.answer,
            "abstained": self.abstained,
            "generator": self.generator,
            "citations": [c.to_dict() for c in self.citations],
            "sources": [h.to_dict() for h in self.sources],
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "question": self.question,
            "standalone_question": self.standalone_question,
            "warnings": list(self.warnings),
            "queries": list(self.queries),
            "relevance": None if self.relevance is None else round(float(self.relevance), 4),
            "abstain_reason": self.abstain_reason,
            "support": self.support,
            "verdicts": [dict(v) for v in self.verdicts],
            "flags": [dict(f) for f in self.flags],
        }
