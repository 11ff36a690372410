"""Language models: the ``LLM`` protocol and one file per server. ``registry`` (the one place a backend is
chosen by name, ``RAG_GENERATOR``), ``base`` (the protocol and what every server adapter shares), ``ollama`` (the official ``ollama`` client),
``openai`` (OpenAI-compatible servers: llama-server, vLLM, LM Studio, ...), ``thinking`` (traces kept out
of answers), ``stream`` (token streams with deadlines), ``tokens`` (prompt size estimates).

A new LLM backend is one new file here plus one line in ``registry``.
May import: the shared modules (config, errors, schema, contract) only: an LLM knows nothing of articles.
"""
