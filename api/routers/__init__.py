"""One router per area: health, search, ask, documents, admin (reindex) and the chat page."""
