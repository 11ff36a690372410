"""The local store: FAISS vectors + BM25 (bm25s) in a versioned index folder, switched atomically."""
