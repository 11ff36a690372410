"""``rag mcp``: the archive as a Model Context Protocol server over stdio (official ``mcp`` SDK), for
desktop assistants and other MCP clients.

Tools
    search_articles(query, k=5)   the best-matching passages (the same objects as ``rag search --json``)
    ask_articles(question)        an answer with its sources listed under it, and the structured citations
    get_article(doc_id)           one article: title, metadata and full text
Resources
    article://<doc_id>            every indexed article (text/plain: title, metadata, then the text)

stdout carries the protocol: nothing else may be printed there (logs go to stderr).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rag.config import Settings

log = logging.getLogger(__name__)

SERVER_NAME = "nk-rag"
MAX_K = 50
INSTRUCTIONS = (
    "A private archive of Dutch news articles about North Korea. Use search_articles to find passages, "
    "ask_articles for an answer with numbered citations, get_article to read a whole article. "
    "Quote the sources ([n] title) when you use them."
)


def article_text(doc) -> str:
    """An article as plain text: title, metadata lines, then its text."""
    meta = "".join(f"{k}: {v}\n" for k, v in sorted(doc.metadata.items()) if k != "title")
    return f"{doc.title}\n{meta}\n{doc.text}"


def build_server(runtime, pipeline, settings: Settings):
    """The MCP server over a loaded runtime (index + retriever) and pipeline (answers)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.resources import FunctionResource

    from rag.answer.sources import answer_with_sources
    from rag.contract import not_blank
    from rag.errors import RagError

    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")
    store = runtime.store

    def checked(text: str, what: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ToolError(f"the {what} is empty")
        try:
            not_blank(text, what)  # the request contract's rules (control characters, lone surrogates)
        except ValueError as e:
            raise ToolError(str(e)) from None
        if len(text) > settings.max_question_chars:
            raise ToolError(f"the {what} is too long ({len(text)} characters; at most {settings.max_question_chars})")
        return text

    @server.tool()
    def search_articles(query: str, k: int = 5) -> dict[str, Any]:
        """Search the news archive. Returns the k passages that best match the query (hybrid
        BM25 + embeddings), each with its doc_id, title, text and character offsets."""
        checked(query, "query")
        if not 1 <= k <= MAX_K:
            raise ToolError(f"k must be between 1 and {MAX_K} (got {k})")
        try:
            hits = runtime.retriever.search(query, k=k, mode=settings.mode)
        except RagError as e:
            raise ToolError(str(e)) from None
        return {"results": [h.to_dict() for h in hits]}

    @server.tool()
    def ask_articles(question: str) -> dict[str, Any]:
        """Answer a question from the news archive. The answer cites its sources as [n]; they are
        listed under it and given as structured citations (doc_id, title, quoted passage). ``support``
        says whether it is answered, uncertain or abstained; ``verdicts`` give, per sentence, whether the
        cited passage says it (supported / unsupported / off_question) and the sentence that supports it."""
        checked(question, "question")
        try:
            a = pipeline.ask(question, k=settings.top_k, mode=settings.mode, generator=settings.generator)
        except RagError as e:
            raise ToolError(str(e)) from None
        d = a.to_dict()
        return {"answer": answer_with_sources(d["answer"], d["citations"], question, d["verdicts"]),
                "citations": d["citations"], "abstained": d["abstained"], "generator": d["generator"],
                "support": d["support"], "verdicts": d["verdicts"], "flags": d["flags"]}

    @server.tool()
    def get_article(doc_id: str) -> dict[str, Any]:
        """One article of the archive in full: title, path, metadata (date, author, url) and text."""
        doc = store.documents.get(doc_id)
        if doc is None:
            raise ToolError(f"no article with id '{doc_id}' (search_articles gives the ids)")
        return {"doc_id": doc.doc_id, "title": doc.title, "path": doc.path, "metadata": doc.metadata,
                "text": doc.text}

    for doc in store.documents.values():
        server.add_resource(FunctionResource(
            uri=f"article://{doc.doc_id}", name=doc.doc_id, title=doc.title, mime_type="text/plain",
            description=" · ".join(str(doc.metadata[k]) for k in ("date", "author") if doc.metadata.get(k)) or None,
            fn=(lambda d=doc: article_text(d)),
        ))
    return server


def serve_stdio(settings: Settings) -> None:
    """Load the index (bringing it up to date first) and the LLM client, then serve MCP on stdio."""
    from rag.llms.registry import make_llm
    from rag.answer.pipeline import Pipeline
    from rag.runtime import open_runtime

    with contextlib.redirect_stdout(sys.stderr):  # progress and library chatter must not corrupt the protocol
        runtime = open_runtime(settings, update=True)
    llm = make_llm(settings, "auto" if settings.generator == "extractive" else None)
    try:
        server = build_server(runtime, Pipeline(runtime.retriever, llm, settings), settings)
        log.info("MCP server ready: %d articles", len(runtime.store.documents))
        import anyio

        from rag.cli.mcp_transport import serve

        anyio.run(serve, server)  # the SDK's stdio transport, with a reply to every line (mcp_transport.py)
    finally:
        close = getattr(llm, "close", None)
        if close is not None:
            close()


def mcp_command(
    data: Annotated[Optional[Path], typer.Option("--data", help="folder of articles (RAG_DATA_DIR)")] = None,
    index: Annotated[Optional[Path], typer.Option("--index", help="index folder (RAG_INDEX_DIR)")] = None,
    embed_model: Annotated[Optional[str], typer.Option("--embed-model", help="embedding model (RAG_EMBED_MODEL)")] = None,
) -> None:
    """Serve the archive to MCP clients (desktop assistants) over stdio: tools search_articles,
    ask_articles, get_article; the articles as resources."""
    from rag.config import get_settings

    settings = get_settings(data_dir=data, index_dir=index, embed_model=embed_model)
    serve_stdio(settings)
