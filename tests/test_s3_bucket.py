"""blobs.s3_create_bucket: the bucket is created at startup, against a real moto server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import aiohttp
import pytest

from app.config import BlobSettings
from app.errors import UNAVAILABLE, AppError
from storage.blobs_s3 import S3BlobStore
from tests.client import start_parlour
from tests.servers import free_port


def _session(region: str = "us-east-1") -> aioboto3.Session:
    return aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )


def _settings(endpoint: str, bucket: str, **overrides: Any) -> BlobSettings:
    values: dict[str, Any] = {
        "backend": "s3", "s3_bucket": bucket, "s3_endpoint_url": endpoint,
        "s3_path_style": True, "s3_create_bucket": True,
    }
    values.update(overrides)
    return BlobSettings(**values)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _buckets(endpoint: str) -> list[str]:
    async with _session().client("s3", endpoint_url=endpoint) as client:
        listed = await client.list_buckets()
    return [b["Name"] for b in listed.get("Buckets", [])]


def _bucket_name() -> str:
    return f"created-{uuid.uuid4().hex[:12]}"


async def test_missing_bucket_is_created_and_kept(moto_endpoint: str) -> None:
    bucket = _bucket_name()
    store = await S3BlobStore.open(_settings(moto_endpoint, bucket), _session())
    try:
        await store.ping()
        await store.put("a.txt", _chunks(b"kept"), "text/plain")
    finally:
        await store.close()
    assert bucket in await _buckets(moto_endpoint)
    # A second node (or a restart) finds the bucket there and leaves its objects alone.
    again = await S3BlobStore.open(_settings(moto_endpoint, bucket), _session())
    try:
        blob = await again.get("a.txt")
        assert b"".join([chunk async for chunk in blob.chunks]) == b"kept"
    finally:
        await again.close()


async def test_bucket_is_created_in_the_configured_region(moto_endpoint: str) -> None:
    bucket = _bucket_name()
    settings = _settings(moto_endpoint, bucket, s3_region="eu-west-1")
    store = await S3BlobStore.open(settings, _session("eu-west-1"))
    await store.close()
    async with _session().client("s3", endpoint_url=moto_endpoint) as client:
        location = await client.get_bucket_location(Bucket=bucket)
    assert location["LocationConstraint"] == "eu-west-1"


async def test_default_creates_nothing(moto_endpoint: str) -> None:
    bucket = _bucket_name()
    assert BlobSettings().s3_create_bucket is False
    settings = _settings(moto_endpoint, bucket, s3_create_bucket=False)
    store = await S3BlobStore.open(settings, _session())
    try:
        with pytest.raises(AppError) as caught:
            await store.ping()
        assert caught.value.code == UNAVAILABLE
    finally:
        await store.close()
    assert bucket not in await _buckets(moto_endpoint)


async def test_unreachable_endpoint_is_unavailable_at_open() -> None:
    settings = _settings(f"http://127.0.0.1:{free_port()}", _bucket_name())
    with pytest.raises(AppError) as caught:
        await S3BlobStore.open(settings, _session())
    assert caught.value.code == UNAVAILABLE
    assert "bucket" in caught.value.message


async def test_server_uploads_into_a_bucket_it_created(
    make_settings: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compose stack's setting: no bucket beforehand, and an upload still lands."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("PARLOUR_BLOBS__S3_CREATE_BUCKET", "true")
    bucket = _bucket_name()
    server = await start_parlour(make_settings(
        blobs__backend="s3", blobs__s3_endpoint_url=moto_endpoint, blobs__s3_bucket=bucket,
        blobs__s3_path_style=True,
    ))
    try:
        status, health = await server.request("GET", "/internal/health")
        assert health["checks"]["blobs"]["ok"] is True, health
        user = await server.signup()
        status, data = await server.request("POST", "/api/v1/chat", user, json={})
        assert status == 201, data
        body = aiohttp.FormData()
        body.add_field("files", b"stored in a fresh bucket", filename="notes.txt",
                       content_type="text/plain")
        status, data = await server.request(
            "POST", f"/api/v1/chat/{data['chat_id']}/upload", user, data=body
        )
        assert status == 201, data
    finally:
        await server.close()
    async with _session().client("s3", endpoint_url=moto_endpoint) as client:
        listed = await client.list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 1
