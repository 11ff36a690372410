-- 002: what BM25 ranking in SQL needs (rag/pgstore.py, search_bm25):
-- the length of every chunk in indexed tokens, and the chunk frequency of every lexeme
-- (rebuilt by every build from ts_stat).
ALTER TABLE rag_chunks ADD COLUMN tlen int;

CREATE TABLE rag_terms (
    lexeme text PRIMARY KEY,
    df     int NOT NULL
);
