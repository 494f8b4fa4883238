"""Retrieval: text extraction, chunking and embeddings for documents and chat files."""
