"""Embeddings: the real packaged MiniLM ONNX model; the OpenAI client's error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from app.config import ConfigError, EmbeddingSettings
from app.errors import UNAVAILABLE, AppError
from app.rag.embeddings import LocalEmbedder, OpenAIEmbedder, build_embedder
from tests.rag_fixtures import free_port


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[LocalEmbedder]:
    local = LocalEmbedder(batch_size=2)
    yield local
    await local.close()


def cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))  # the vectors are unit length


async def test_similar_sentences_score_higher(embedder: LocalEmbedder) -> None:
    cat, kitten, stocks = await embedder.embed([
        "The cat sat on the mat.",
        "A kitten was sitting on the rug.",
        "Quarterly earnings beat analyst expectations on strong cloud revenue.",
    ])
    assert cos(cat, kitten) > cos(cat, stocks) + 0.3
    assert cos(cat, kitten) > 0.5


async def test_shape_norm_and_batching(embedder: LocalEmbedder) -> None:
    texts = [f"sentence number {i} about parlour rooms" for i in range(5)] + [""]
    vectors = await embedder.embed(texts)  # three batches of two
    assert embedder.dimensions == 384
    assert np.asarray(vectors).shape == (6, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    alone = await embedder.embed([texts[3]])
    assert np.allclose(alone[0], vectors[3], atol=1e-4)  # padding does not leak in
    assert await embedder.embed([]) == []


async def test_long_text_is_truncated(embedder: LocalEmbedder) -> None:
    long_text = "retrieval augmented generation " * 1000
    [vector] = await embedder.embed([long_text])
    assert len(vector) == 384


async def test_openai_unreachable_is_unavailable() -> None:
    settings = EmbeddingSettings(
        backend="openai", model="nomic-embed-text",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
    )
    embedder = OpenAIEmbedder(settings, "unused")
    embedder._client = embedder._client.with_options(max_retries=0, timeout=5)
    try:
        with pytest.raises(AppError) as caught:
            await embedder.embed(["hello"])
        assert caught.value.code == UNAVAILABLE
    finally:
        await embedder.close()


async def test_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    local = build_embedder(EmbeddingSettings())
    assert isinstance(local, LocalEmbedder)
    await local.close()
    with pytest.raises(ConfigError, match="384"):
        build_embedder(EmbeddingSettings(dimensions=1536))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_embedder(EmbeddingSettings(backend="openai", dimensions=1536))
    compatible = build_embedder(
        EmbeddingSettings(backend="openai", base_url="http://127.0.0.1:1/v1", dimensions=768)
    )
    assert isinstance(compatible, OpenAIEmbedder) and compatible.dimensions == 768
    await compatible.close()
