-- 001: the shared store. Applied once by rag/db.py (recorded in rag_schema_version).
-- The embedding column and its HNSW index depend on the model's dimension: rag/db.py
-- (ensure_embedding_column) creates them at the first build and re-creates them when the
-- dimension changes (which is a full rebuild anyway).
CREATE EXTENSION IF NOT EXISTS vector;

-- one row: the manifest of the current index and a counter bumped by every build
CREATE TABLE rag_meta (
    id            int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    manifest      jsonb NOT NULL,
    index_version bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rag_documents (
    doc_id   text PRIMARY KEY,
    path     text NOT NULL UNIQUE,
    title    text NOT NULL,
    text     text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    sha256   text NOT NULL
);

CREATE TABLE rag_chunks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id     text NOT NULL UNIQUE,
    doc_id       text NOT NULL REFERENCES rag_documents (doc_id) ON DELETE CASCADE,
    ordinal      int NOT NULL,
    title        text NOT NULL,
    text         text NOT NULL,
    start_offset int NOT NULL,
    end_offset   int NOT NULL CHECK (end_offset >= start_offset),
    -- to_tsvector(<config from RAG_BM25_LANGUAGE>, folded text): written by the indexer
    tsv          tsvector NOT NULL
);

CREATE INDEX rag_chunks_doc ON rag_chunks (doc_id, ordinal);
CREATE INDEX rag_chunks_tsv ON rag_chunks USING gin (tsv);
