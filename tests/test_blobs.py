"""Blob stores: the local directory and S3 against a real moto server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aioboto3
import pytest

from app.config import BlobSettings
from app.errors import INVALID_PAYLOAD, NOT_FOUND, UNAVAILABLE, AppError
from storage.blobs import BlobStore, build_blob_store
from storage.blobs_local import LocalBlobStore
from storage.blobs_s3 import S3BlobStore
from tests.rag_fixtures import free_port

MB = 1024 * 1024


def _session() -> aioboto3.Session:
    return aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def _s3_settings(endpoint: str, bucket: str) -> BlobSettings:
    return BlobSettings(
        backend="s3", s3_bucket=bucket, s3_endpoint_url=endpoint, s3_path_style=True,
        s3_prefix="uploads/", multipart_chunk_mb=5,
    )


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def failing_after(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunks_of(data, MB):
        yield chunk
    raise RuntimeError("client went away")


async def read_all(store: BlobStore, key: str) -> tuple[bytes, str, int]:
    blob = await store.get(key)
    body = b"".join([chunk async for chunk in blob.chunks])
    return body, blob.content_type, blob.length


async def open_uploads(endpoint: str, bucket: str) -> list[object]:
    async with _session().client("s3", endpoint_url=endpoint) as client:
        listed = await client.list_multipart_uploads(Bucket=bucket)
        return list(listed.get("Uploads", []))


@pytest.fixture
async def bucket(moto_endpoint: str) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    async with _session().client("s3", endpoint_url=moto_endpoint) as client:
        await client.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, moto_endpoint: str, bucket: str
) -> AsyncIterator[BlobStore]:
    if request.param == "local":
        blob_store: BlobStore = LocalBlobStore(tmp_path / "blobs")
    else:
        blob_store = await S3BlobStore.open(_s3_settings(moto_endpoint, bucket), _session())
    try:
        yield blob_store
    finally:
        await blob_store.close()


async def test_round_trip(store: BlobStore) -> None:
    data = os.urandom(300_000)
    size = await store.put("chats/c1/f1", chunks_of(data), "application/pdf")
    assert size == len(data)
    assert await store.exists("chats/c1/f1")
    body, content_type, length = await read_all(store, "chats/c1/f1")
    assert body == data and content_type == "application/pdf" and length == len(data)


async def test_empty_blob(store: BlobStore) -> None:
    assert await store.put("empty", chunks_of(b""), "text/plain") == 0
    assert await read_all(store, "empty") == (b"", "text/plain", 0)


async def test_overwrite_replaces_body_and_type(store: BlobStore) -> None:
    await store.put("k", chunks_of(b"first"), "text/plain")
    await store.put("k", chunks_of(b"second"), "text/markdown")
    assert await read_all(store, "k") == (b"second", "text/markdown", 6)


async def test_large_body_uses_parts(store: BlobStore, moto_endpoint: str, bucket: str) -> None:
    data = os.urandom(11 * MB)  # three 5 MB parts on S3
    assert await store.put("big/file.bin", chunks_of(data, MB), "application/octet-stream") == (
        len(data)
    )
    body, _, length = await read_all(store, "big/file.bin")
    assert length == len(data) and body == data
    if isinstance(store, S3BlobStore):
        async with _session().client("s3", endpoint_url=moto_endpoint) as client:
            head = await client.head_object(Bucket=bucket, Key="uploads/big/file.bin")
        assert head["ETag"].endswith('-3"')  # a multipart object's ETag counts its parts
        assert head["ContentType"] == "application/octet-stream"


async def test_delete_is_idempotent(store: BlobStore) -> None:
    await store.put("gone", chunks_of(b"x"), "text/plain")
    await store.delete("gone")
    await store.delete("gone")
    assert not await store.exists("gone")
    with pytest.raises(AppError) as caught:
        await store.get("gone")
    assert caught.value.code == NOT_FOUND


async def test_close_stream_without_reading(store: BlobStore) -> None:
    await store.put("partial", chunks_of(b"abc" * 100_000), "text/plain")
    blob = await store.get("partial")
    assert await anext(blob.chunks)
    await blob.aclose()
    await blob.aclose()
    assert [chunk async for chunk in blob.chunks] == []


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../escape", "/etc/passwd", "a\x00b", "", "a//b", "./a", "a\\b"]
)
async def test_keys_cannot_escape(store: BlobStore, key: str) -> None:
    for attempt in (
        store.put(key, chunks_of(b"x"), "text/plain"),
        store.get(key),
        store.delete(key),
        store.exists(key),
    ):
        with pytest.raises(AppError) as caught:
            await attempt
        assert caught.value.code == INVALID_PAYLOAD


@pytest.mark.parametrize("size", [2 * MB, 7 * MB])  # before and after the first S3 part
async def test_failed_upload_leaves_nothing(
    store: BlobStore, size: int, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="client went away"):
        await store.put("half", failing_after(os.urandom(size)), "text/plain")
    assert not await store.exists("half")
    if isinstance(store, S3BlobStore):
        assert await open_uploads(moto_endpoint, bucket) == []
    else:
        leftovers = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
        assert leftovers == []


async def test_local_keeps_files_inside_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "blobs"
    (root / "objects").mkdir(parents=True)
    (root / "objects" / "link").symlink_to(outside)
    store = LocalBlobStore(root)
    with pytest.raises(AppError) as caught:
        await store.put("link/file", chunks_of(b"x"), "text/plain")
    assert caught.value.code == INVALID_PAYLOAD
    assert list(outside.iterdir()) == []


async def test_s3_prefix_is_applied(moto_endpoint: str, bucket: str) -> None:
    store = await S3BlobStore.open(_s3_settings(moto_endpoint, bucket), _session())
    try:
        await store.put("a/b.txt", chunks_of(b"hi"), "text/plain")
        await store.ping()
    finally:
        await store.close()
    async with _session().client("s3", endpoint_url=moto_endpoint) as client:
        listed = await client.list_objects_v2(Bucket=bucket)
    assert [obj["Key"] for obj in listed.get("Contents", [])] == ["uploads/a/b.txt"]


async def test_s3_missing_bucket_is_unavailable(moto_endpoint: str) -> None:
    store = await S3BlobStore.open(_s3_settings(moto_endpoint, "no-such-bucket"), _session())
    try:
        with pytest.raises(AppError) as caught:
            await store.ping()
        assert caught.value.code == UNAVAILABLE
    finally:
        await store.close()


async def test_s3_down_is_unavailable() -> None:
    settings = _s3_settings(f"http://127.0.0.1:{free_port()}", "bucket")
    store = await S3BlobStore.open(settings, _session())
    try:
        with pytest.raises(AppError) as caught:
            await store.put("k", chunks_of(b"x"), "text/plain")
        assert caught.value.code == UNAVAILABLE
    finally:
        await store.close()


async def test_factory_default_is_local(tmp_path: Path) -> None:
    store = await build_blob_store(BlobSettings(), tmp_path)
    assert isinstance(store, LocalBlobStore)
    await store.ping()
    assert (tmp_path / "blobs" / "objects").is_dir()
    await store.close()


async def test_a_reader_cancelled_while_its_blob_opens_leaves_no_file_open(
    tmp_path: Path,
) -> None:
    """Extraction timed out, a download dropped: the file the thread opened is closed,
    not left for the collector (pytest reports such a leak as an error of this test)."""
    store = LocalBlobStore(tmp_path / "blobs")
    await store.put("doc", chunks_of(b"x" * 1000), "application/pdf")
    before = len(os.listdir("/proc/self/fd"))
    for i in range(300):
        reader = asyncio.ensure_future(store.get("doc"))
        for _ in range(i % 60):  # land the cancel at each step of the opening
            await asyncio.sleep(0)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            blob = await reader
            await blob.aclose()
    await asyncio.sleep(0.2)  # the threads still opening finish
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before
    await store.close()
