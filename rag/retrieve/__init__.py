"""Retrieve: a question to ranked passages. ``retriever`` runs BM25, dense or hybrid search (rank
fusion) over a ``Store``; ``batching`` lets concurrent queries share one embedding call.
May import: ``rag.embed``, ``rag.index`` and the shared modules.
"""
