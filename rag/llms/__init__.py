"""Language models: the ``LLM`` protocol and one file per server. ``ollama`` (the official ``ollama``
client), ``stream`` (token streams with deadlines), ``tokens`` (prompt size estimates).

A new LLM backend is one new file here plus one line where backends are chosen.
May import: the shared modules (config, errors, schema) only: an LLM knows nothing of articles.
"""
