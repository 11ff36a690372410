"""Eval: the reference Q&A set (``qaset``), the run over retrieval and answers (``evaluation``),
the LLM judge (``judge``), reports (``report``) and the floors CI guards (``floors``).
May import every stage before it; the pipeline and retriever are passed in.
"""
