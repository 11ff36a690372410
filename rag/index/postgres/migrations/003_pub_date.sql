-- 003: the article's publication date on every chunk (rag/pubdate.py), ISO text "YYYY-MM-DD";
-- NULL when unknown (and on rows written before this migration).
ALTER TABLE rag_chunks ADD COLUMN pub_date text;
