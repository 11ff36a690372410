"""Index: where passages are stored and searched. ``stores`` holds the ``Store`` protocol and the
one place a store is chosen (``RAG_STORE``); ``local/`` is FAISS + BM25 in versioned folders
(``store`` loads and searches, ``indexer`` builds, ``live`` follows new versions in a running
server); ``watch`` indexes the data folder as files change (``rag serve --watch``); ``postgres/`` is pgvector + full-text search.

A new store is one new subpackage plus one line in ``stores.open_store``/``build_store``.
May import: ``rag.ingest``, ``rag.embed`` and the shared modules (config, errors, schema, text).
"""
