"""The PostgreSQL store: pgvector + full-text search through psycopg 3 (``RAG_STORE=postgres``)."""
