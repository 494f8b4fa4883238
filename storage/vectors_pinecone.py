"""Pinecone as the vector store: the SDK's async data-plane index, one namespace per key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pinecone import AsyncIndex
from pinecone.errors import PineconeError, PineconeTypeError, PineconeValueError

from app.errors import UNAVAILABLE, AppError
from storage.vectors import MetadataValue, VectorItem, VectorMatch

UPSERT_BATCH = 100  # 384-1536 floats as JSON stay well under Pinecone's 2 MB request cap
DELETE_BATCH = 1000  # Pinecone's limit of ids per delete request


def equality_filter(flt: dict[str, str]) -> dict[str, Any]:
    """Our {key: value} equality filter in Pinecone's filter language."""
    clauses = [{key: {"$eq": value}} for key, value in flt.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _from_pinecone(metadata: dict[str, Any]) -> dict[str, MetadataValue]:
    # Pinecone stores every number as a float: give integers back as int (chunk indexes).
    return {
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in metadata.items()
    }


@contextlib.contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except (PineconeValueError, PineconeTypeError):
        raise  # our own bad arguments, not an outage
    except PineconeError as exc:
        raise AppError(UNAVAILABLE, f"pinecone {what} failed: {exc}") from exc


class PineconeVectorStore:
    """Vectors in a Pinecone index created with metric=cosine and the embedder's dimension."""

    def __init__(self, host: str, api_key: str, timeout: float = 30.0) -> None:
        self._index = AsyncIndex(host=host, api_key=api_key, timeout=timeout)

    async def upsert(self, namespace: str, items: list[VectorItem]) -> None:
        """Insert or replace `items` in `namespace`, in batches."""
        for start in range(0, len(items), UPSERT_BATCH):
            batch = [
                {"id": item.id, "values": item.values, "metadata": item.metadata}
                if item.metadata else {"id": item.id, "values": item.values}
                for item in items[start : start + UPSERT_BATCH]
            ]
            with _unavailable("upsert"):
                await self._index.upsert(vectors=batch, namespace=namespace)

    async def query(
        self,
        namespace: str,
        vector: list[float],
        top_k: int,
        filter: dict[str, str] | None = None,
    ) -> list[VectorMatch]:
        """The `top_k` nearest vectors in `namespace` whose metadata matches `filter`."""
        with _unavailable("query"):
            result = await self._index.query(
                top_k=top_k,
                vector=vector,
                namespace=namespace,
                filter=equality_filter(filter) if filter else None,
                include_metadata=True,
            )
        return [
            VectorMatch(match.id, float(match.score), _from_pinecone(match.metadata or {}))
            for match in result.matches
        ]

    async def delete_ids(self, namespace: str, ids: list[str]) -> None:
        """Delete the given ids from `namespace`; unknown ids are ignored."""
        for start in range(0, len(ids), DELETE_BATCH):
            with _unavailable("delete"):
                await self._index.delete(ids=ids[start : start + DELETE_BATCH],
                                         namespace=namespace)

    async def delete_where(self, namespace: str, filter: dict[str, str]) -> None:
        """Delete every vector in `namespace` whose metadata matches `filter` (non-empty)."""
        if not filter:
            raise ValueError("delete_where needs a non-empty filter")
        with _unavailable("delete"):
            await self._index.delete(filter=equality_filter(filter), namespace=namespace)

    async def ping(self) -> None:
        """Check that the index answers."""
        with _unavailable("describe_index_stats"):
            await self._index.describe_index_stats()

    async def close(self) -> None:
        """Close the index's HTTP client."""
        await self._index.close()
