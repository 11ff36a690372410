-- 004: where each chunk's publication date was found (rag/ingest/pubdate.py): front_matter | text | byline |
-- file_property; NULL without a date (and on rows written before this migration, until the next `rag index`).
ALTER TABLE rag_chunks ADD COLUMN date_source text;
