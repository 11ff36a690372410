"""Ingest: articles from files and web pages into ``Document`` and chunk objects.

``documents`` walks a data folder (front matter, skip reasons), ``formats`` reads Markdown, text,
HTML, PDF and Word, ``chunking`` cuts documents into passages, ``add`` brings one file or URL into
the data folder. May import: ``rag.config``, ``rag.errors``, ``rag.schema``, ``rag.text``.
"""
