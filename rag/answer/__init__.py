"""Answer: the way a question travels, one module per step, run in this order by ``pipeline``:

1. ``rewrite``    a follow-up question becomes a standalone one (rule-based, or by the LLM)
2. (retrieve)     ``rag.retrieve`` finds passages
3. ``decide``     answered / uncertain / abstained, from the passages' scores and evidence
4. generate       ``prompt`` + an LLM from ``rag.llms``, or ``extractive`` (quotes, no LLM);
                  ``choice`` decides which one answers
5. ``check``      citations parsed, checked against the passages, renumbered 1, 2, 3
   ``sources``    the answer as plain text with its numbered sources (``/v1``, MCP, CLI)

May import: ``rag.ingest`` (sentence spans), ``rag.retrieve``, ``rag.llms`` and the shared modules.
"""
