"""The embedded blob store: files in a local directory, written atomically."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from app.errors import INVALID_PAYLOAD, NOT_FOUND, UNAVAILABLE, AppError
from app.tasks import acquire_in_thread
from storage.blobs import DEFAULT_CONTENT_TYPE, READ_CHUNK, BlobStream, ChunkIterator, validate_key


class LocalBlobStore:
    """Blobs as files under `root/objects`, content types under `root/meta`."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._objects = self._root / "objects"
        self._meta = self._root / "meta"

    async def _paths(self, key: str) -> tuple[Path, Path]:
        validate_key(key)
        # resolve() touches the filesystem (symlinks), so it runs off the loop too.
        return await asyncio.to_thread(self._resolve, key)

    def _resolve(self, key: str) -> tuple[Path, Path]:
        data = (self._objects / key).resolve()
        meta = (self._meta / (key + ".json")).resolve()
        # Defence in depth against symlinks: the resolved path must stay inside.
        if not data.is_relative_to(self._objects) or not meta.is_relative_to(self._meta):
            raise AppError(INVALID_PAYLOAD, "invalid blob key: outside the store")
        return data, meta

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Stream `chunks` to a temp file, then atomically move it into place."""
        data_path, meta_path = await self._paths(key)
        await asyncio.to_thread(data_path.parent.mkdir, parents=True, exist_ok=True)
        fd, tmp_name = await asyncio.to_thread(
            tempfile.mkstemp, dir=data_path.parent, prefix=".upload-"
        )
        tmp = Path(tmp_name)
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in chunks:
                    size += len(chunk)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= READ_CHUNK:
                        await asyncio.to_thread(_write_all, handle, pending)
                        pending, pending_size = [], 0
                await asyncio.to_thread(_write_all, handle, pending)
                await asyncio.to_thread(_flush, handle)
            await asyncio.to_thread(_write_meta, meta_path, content_type)
            await asyncio.to_thread(os.replace, tmp, data_path)
        except BaseException:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
            raise
        return size

    async def get(self, key: str) -> BlobStream:
        """Open the blob for streaming; not_found if it does not exist."""
        data_path, meta_path = await self._paths(key)
        try:  # closed, should the caller be cancelled while the thread opens it
            handle, length, content_type = await acquire_in_thread(
                lambda: _open_for_read(data_path, meta_path), lambda opened: opened[0].close())
        except FileNotFoundError:
            raise AppError(NOT_FOUND, "file not found") from None

        async def read() -> bytes:
            return await asyncio.to_thread(handle.read, READ_CHUNK)

        async def close() -> None:
            await asyncio.to_thread(handle.close)

        iterator = ChunkIterator(read, close)
        return BlobStream(content_type, length, iterator, iterator.aclose)

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        data_path, meta_path = await self._paths(key)
        await asyncio.to_thread(data_path.unlink, missing_ok=True)
        await asyncio.to_thread(meta_path.unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        """Whether a blob is stored under `key`."""
        data_path, _ = await self._paths(key)
        return await asyncio.to_thread(data_path.is_file)

    async def ping(self) -> None:
        """Check that the root directory is usable (creating it if needed)."""
        try:
            await asyncio.to_thread(self._objects.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(self._meta.mkdir, parents=True, exist_ok=True)
            writable = await asyncio.to_thread(os.access, self._objects, os.W_OK)
        except OSError as exc:
            raise AppError(UNAVAILABLE, f"blob directory unusable: {exc}") from exc
        if not writable:
            raise AppError(UNAVAILABLE, f"blob directory not writable: {self._objects}")

    async def close(self) -> None:
        """Nothing to release for a directory."""


def _write_all(handle: IO[bytes], pieces: list[bytes]) -> None:
    for piece in pieces:
        handle.write(piece)


def _flush(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _write_meta(path: Path, content_type: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".meta-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"content_type": content_type}, handle)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_meta(path: Path) -> str:
    try:
        value = json.loads(path.read_text()).get("content_type")
    except FileNotFoundError:
        return DEFAULT_CONTENT_TYPE
    return value if isinstance(value, str) and value else DEFAULT_CONTENT_TYPE


def _open_for_read(path: Path, meta_path: Path) -> tuple[IO[bytes], int, str]:
    """The open blob, its length and its content type (closed again if that fails)."""
    handle = path.open("rb")
    try:
        return handle, os.fstat(handle.fileno()).st_size, _read_meta(meta_path)
    except BaseException:
        handle.close()
        raise
