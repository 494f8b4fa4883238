"""Vector stores: the same cases on sqlite-vec and on the Pinecone SDK against the stub."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import ConfigError, VectorSettings
from app.errors import UNAVAILABLE, AppError
from storage.vectors import VectorItem, VectorStore, build_vector_store
from storage.vectors_pinecone import PineconeVectorStore
from storage.vectors_sqlite import SqliteVecStore
from tests.rag_fixtures import free_port

DIMS = 4


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


@pytest.fixture(params=["sqlite", "pinecone"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, pinecone_stub: str
) -> AsyncIterator[VectorStore]:
    if request.param == "sqlite":
        vector_store: VectorStore = SqliteVecStore(tmp_path / "vectors.db", DIMS)
    else:
        vector_store = PineconeVectorStore(pinecone_stub, "stub-key")
    try:
        yield vector_store
    finally:
        await vector_store.close()


@pytest.fixture
def ns() -> str:
    """A fresh namespace (the stub is shared by the whole session)."""
    return f"user:{uuid.uuid4().hex[:8]}"


def corpus() -> list[VectorItem]:
    return [
        VectorItem("d1:0", unit(1, 0, 0, 0), {"document_id": "d1", "chunk": 0, "w": 0.5}),
        VectorItem("d1:1", unit(1, 1, 0, 0), {"document_id": "d1", "chunk": 1, "text": "b"}),
        VectorItem("d2:0", unit(1, 0.2, 0, 0), {"document_id": "d2", "chunk": 0, "text": "c"}),
        VectorItem("d2:1", unit(0, 0, 1, 0), {"document_id": "d2", "chunk": 1, "text": "d"}),
        VectorItem("d3:0", unit(-1, 0, 0, 0), {"document_id": "d3", "chat_id": "c9"}),
    ]


async def test_query_ranks_by_cosine(store: VectorStore, ns: str) -> None:
    await store.upsert(ns, corpus())
    matches = await store.query(ns, unit(1, 0, 0, 0), top_k=3)
    assert [m.id for m in matches] == ["d1:0", "d2:0", "d1:1"]
    assert matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert matches[1].score == pytest.approx(1 / math.sqrt(1.04), abs=1e-5)
    assert matches[2].score == pytest.approx(1 / math.sqrt(2), abs=1e-5)
    assert matches[0].metadata == {"document_id": "d1", "chunk": 0, "w": 0.5}
    assert type(matches[0].metadata["chunk"]) is int  # Pinecone hands numbers back as floats
    everything = await store.query(ns, unit(1, 0, 0, 0), top_k=10)
    assert everything[-1].id == "d3:0"
    assert everything[-1].score == pytest.approx(-1.0, abs=1e-5)


async def test_filter_applies_before_top_k(store: VectorStore, ns: str) -> None:
    await store.upsert(ns, corpus())
    matches = await store.query(ns, unit(1, 0, 0, 0), top_k=1, filter={"document_id": "d2"})
    assert [m.id for m in matches] == ["d2:0"]
    both = await store.query(
        ns, unit(0, 0, 1, 0), top_k=5, filter={"document_id": "d3", "chat_id": "c9"}
    )
    assert [m.id for m in both] == ["d3:0"]
    assert await store.query(ns, unit(1, 0, 0, 0), top_k=5, filter={"document_id": "zz"}) == []


async def test_upsert_replaces(store: VectorStore, ns: str) -> None:
    await store.upsert(ns, corpus())
    await store.upsert(ns, [VectorItem("d1:0", unit(0, 0, 0, 1), {"document_id": "d9"})])
    top = await store.query(ns, unit(0, 0, 0, 1), top_k=1)
    assert top[0].id == "d1:0" and top[0].metadata == {"document_id": "d9"}
    assert await store.query(ns, unit(1, 0, 0, 0), top_k=5, filter={"document_id": "d1"}) != []
    only_d1 = await store.query(ns, unit(1, 0, 0, 0), top_k=5, filter={"document_id": "d1"})
    assert [m.id for m in only_d1] == ["d1:1"]


async def test_delete_where(store: VectorStore, ns: str) -> None:
    await store.upsert(ns, corpus())
    await store.delete_where(ns, {"document_id": "d1"})
    await store.delete_where(ns, {"document_id": "d1"})
    ids = {m.id for m in await store.query(ns, unit(1, 0, 0, 0), top_k=10)}
    assert ids == {"d2:0", "d2:1", "d3:0"}
    await store.delete_where(ns, {"chat_id": "c9"})
    ids = {m.id for m in await store.query(ns, unit(1, 0, 0, 0), top_k=10)}
    assert ids == {"d2:0", "d2:1"}


async def test_delete_ids(store: VectorStore, ns: str) -> None:
    await store.upsert(ns, corpus())
    await store.delete_ids(ns, ["d2:0", "missing"])
    ids = {m.id for m in await store.query(ns, unit(1, 0, 0, 0), top_k=10)}
    assert ids == {"d1:0", "d1:1", "d2:1", "d3:0"}


async def test_namespaces_are_isolated(store: VectorStore, ns: str) -> None:
    other = ns + "-other"
    await store.upsert(ns, corpus())
    await store.upsert(other, [VectorItem("d1:0", unit(0, 1, 0, 0), {"document_id": "d1"})])
    assert [m.id for m in await store.query(other, unit(1, 0, 0, 0), top_k=10)] == ["d1:0"]
    await store.delete_where(other, {"document_id": "d1"})
    assert await store.query(other, unit(1, 0, 0, 0), top_k=10) == []
    assert len(await store.query(ns, unit(1, 0, 0, 0), top_k=10)) == 5


async def test_ping_and_empty_namespace(store: VectorStore, ns: str) -> None:
    await store.ping()
    assert await store.query(ns, unit(1, 0, 0, 0), top_k=3) == []


async def test_many_items_in_batches(store: VectorStore, ns: str) -> None:
    items = [
        VectorItem(f"v{i}", unit(1, i / 250, 0, 0), {"document_id": f"d{i % 3}"})
        for i in range(250)
    ]
    await store.upsert(ns, items)
    top = await store.query(ns, unit(1, 0, 0, 0), top_k=3, filter={"document_id": "d1"})
    assert [m.id for m in top] == ["v1", "v4", "v7"]
    await store.delete_ids(ns, [f"v{i}" for i in range(250)])
    assert await store.query(ns, unit(1, 0, 0, 0), top_k=3) == []


async def test_sqlite_persists_and_checks_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "vectors.db"
    first = SqliteVecStore(path, DIMS)
    await first.upsert("n", corpus())
    await first.close()
    again = SqliteVecStore(path, DIMS)
    assert len(await again.query("n", unit(1, 0, 0, 0), top_k=10)) == 5
    await again.close()
    wrong = SqliteVecStore(path, 8)
    with pytest.raises(ConfigError, match="4-dimension"):
        await wrong.ping()
    await wrong.close()


async def test_wrong_vector_length_is_rejected(tmp_path: Path) -> None:
    store = SqliteVecStore(tmp_path / "v.db", DIMS)
    with pytest.raises(ValueError, match="dimensions"):
        await store.upsert("n", [VectorItem("x", [1.0, 0.0])])
    await store.close()


async def test_pinecone_errors_are_unavailable(pinecone_stub: str) -> None:
    wrong_key = PineconeVectorStore(pinecone_stub, "wrong-key")
    down = PineconeVectorStore(f"http://127.0.0.1:{free_port()}", "stub-key", timeout=2)
    for store in (wrong_key, down):
        with pytest.raises(AppError) as caught:
            await store.ping()
        assert caught.value.code == UNAVAILABLE
        await store.close()


def test_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(build_vector_store(VectorSettings(), tmp_path, DIMS), SqliteVecStore)
    settings = VectorSettings(backend="pinecone", pinecone_host="https://idx.example.io")
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="PINECONE_API_KEY"):
        build_vector_store(settings, tmp_path, DIMS)
    monkeypatch.setenv("PINECONE_API_KEY", "k")
    assert isinstance(build_vector_store(settings, tmp_path, DIMS), PineconeVectorStore)
    with pytest.raises(ConfigError, match="pinecone_host"):
        build_vector_store(VectorSettings(backend="pinecone"), tmp_path, DIMS)
