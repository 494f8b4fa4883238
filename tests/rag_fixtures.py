"""Fixtures for blobs, vectors and embeddings (moto S3, Pinecone stub)."""
