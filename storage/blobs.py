"""File blobs behind one Protocol; backends in blobs_local.py and blobs_s3.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.config import BlobSettings
from app.errors import INVALID_PAYLOAD, AppError

READ_CHUNK = 256 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_KEY_LENGTH = 1024


async def _no_close() -> None:
    return None


class ChunkIterator:
    """Reads chunks until empty, then releases the source exactly once."""

    def __init__(
        self, read: Callable[[], Awaitable[bytes]], close: Callable[[], Awaitable[None]]
    ) -> None:
        self._read = read
        self._close = close
        self._closed = False

    def __aiter__(self) -> ChunkIterator:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk = await self._read()
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Release the underlying file or HTTP body."""
        if not self._closed:
            self._closed = True
            await self._close()


@dataclass(slots=True)
class BlobStream:
    """A stored blob being read: its type, its size and its bytes as chunks."""

    content_type: str
    length: int
    chunks: AsyncIterator[bytes]
    _close: Callable[[], Awaitable[None]] = field(default=_no_close, repr=False)

    async def aclose(self) -> None:
        """Release the stream without reading it to the end (safe to call twice)."""
        await self._close()


class BlobStore(Protocol):
    """Where uploaded files live; keys are relative paths such as `chats/<id>/<file>`."""

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int: ...

    async def get(self, key: str) -> BlobStream: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative path; raise invalid_payload otherwise."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise AppError(INVALID_PAYLOAD, "invalid blob key: empty or too long")
    if "\x00" in key or "\\" in key:
        raise AppError(INVALID_PAYLOAD, "invalid blob key: forbidden character")
    if key.startswith("/"):
        raise AppError(INVALID_PAYLOAD, "invalid blob key: absolute path")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise AppError(INVALID_PAYLOAD, "invalid blob key: empty, '.' or '..' segment")
    return key



async def build_blob_store(settings: BlobSettings, data_dir: Path) -> BlobStore:
    """The configured blob store, opened (S3 needs its client created on the loop)."""
    if settings.backend == "s3":
        from storage.blobs_s3 import S3BlobStore

        return await S3BlobStore.open(settings)
    from storage.blobs_local import LocalBlobStore

    return LocalBlobStore(data_dir / "blobs")
