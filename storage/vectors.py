"""Document vectors behind one Protocol: sqlite-vec (embedded default) and Pinecone."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.config import ConfigError, VectorSettings

MetadataValue = str | int | float


@dataclass(slots=True)
class VectorItem:
    """One vector to store: its id, values and flat metadata."""

    id: str
    values: list[float]
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@dataclass(slots=True)
class VectorMatch:
    """A query hit; `score` is cosine similarity (higher is more similar)."""

    id: str
    score: float
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


class VectorStore(Protocol):
    """Namespaced vectors with equality filters on string metadata."""

    async def upsert(self, namespace: str, items: list[VectorItem]) -> None: ...

    async def query(
        self,
        namespace: str,
        vector: list[float],
        top_k: int,
        filter: dict[str, str] | None = None,
    ) -> list[VectorMatch]: ...

    async def delete_ids(self, namespace: str, ids: list[str]) -> None: ...

    async def delete_where(self, namespace: str, filter: dict[str, str]) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def build_vector_store(settings: VectorSettings, data_dir: Path, dimensions: int) -> VectorStore:
    """The configured vector store; Pinecone takes its key from PINECONE_API_KEY."""
    if settings.backend == "pinecone":
        from storage.vectors_pinecone import PineconeVectorStore

        if not settings.pinecone_host:
            raise ConfigError("vectors.pinecone_host is required for the pinecone backend")
        api_key = os.environ.get("PINECONE_API_KEY", "")
        if not api_key:
            raise ConfigError("PINECONE_API_KEY is not set (required by vectors.backend=pinecone)")
        return PineconeVectorStore(settings.pinecone_host, api_key)
    from storage.vectors_sqlite import SqliteVecStore

    return SqliteVecStore(data_dir / "vectors.db", dimensions)
