"""Blobs in S3 (or MinIO, moto) through aioboto3, with multipart uploads for large bodies."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, cast

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from app.config import BlobSettings
from app.errors import NOT_FOUND, UNAVAILABLE, AppError
from storage.blobs import DEFAULT_CONTENT_TYPE, READ_CHUNK, BlobStream, ChunkIterator, validate_key

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.literals import BucketLocationConstraintType

log = logging.getLogger(__name__)


class S3BlobStore:
    """Blobs in one S3 bucket under a key prefix; one client for the store's lifetime."""

    def __init__(self, client: S3Client, stack: contextlib.AsyncExitStack, bucket: str,
                 prefix: str, part_size: int) -> None:
        self._client = client
        self._stack = stack
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._part_size = part_size

    @classmethod
    async def open(
        cls, settings: BlobSettings, session: aioboto3.Session | None = None
    ) -> S3BlobStore:
        """Create the S3 client (credentials from the usual AWS chain unless `session`)."""
        session = session or aioboto3.Session()
        config = AioConfig(
            s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
        )
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=settings.s3_endpoint_url,
                region_name=settings.s3_region,
                config=config,
            )
        )
        part_size = settings.multipart_chunk_mb * 1024 * 1024
        store = cls(client, stack, settings.s3_bucket, settings.s3_prefix, part_size)
        if settings.s3_create_bucket:
            try:
                await store.create_bucket(settings.s3_region)
            except BaseException:
                await store.close()
                raise
        return store

    async def create_bucket(self, region: str) -> None:
        """Create the bucket unless it exists; nodes starting together may race here."""
        try:
            with _unavailable(f"bucket {self._bucket!r} check"):
                await self._client.head_bucket(Bucket=self._bucket)
            return
        except AppError as exc:
            if not _is_missing(exc.__cause__):
                raise
        try:
            with _unavailable(f"creating bucket {self._bucket!r}"):
                if region == "us-east-1":
                    await self._client.create_bucket(Bucket=self._bucket)
                else:
                    await self._client.create_bucket(
                        Bucket=self._bucket,
                        CreateBucketConfiguration={
                            "LocationConstraint": cast("BucketLocationConstraintType", region)
                        },
                    )
        except AppError as exc:
            if _error_code(exc.__cause__) != "BucketAlreadyOwnedByYou":
                raise
            return
        log.info("created S3 bucket %s", self._bucket)

    def _key(self, key: str) -> str:
        return self._prefix + validate_key(key)

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Upload `chunks`: one PUT when small, a multipart upload past one part size."""
        s3_key = self._key(key)
        # The chunks of the part being gathered, joined once when it is full: one copy
        # of a part in memory while it is sent, not a growing buffer plus two copies
        # (a 1 GiB upload peaked ~45 MB above idle that way). A part is the chunk that
        # fills it past the part size included (S3 takes any size from 5 MiB).
        pending: list[bytes] = []
        pending_size = 0
        upload_id: str | None = None
        parts: list[tuple[int, str]] = []
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= self._part_size:
                    if upload_id is None:
                        upload_id = await self._start_multipart(s3_key, content_type)
                    part = b"".join(pending)
                    pending, pending_size = [], 0
                    parts.append(await self._upload_part(s3_key, upload_id, len(parts) + 1, part))
                    del part
            if upload_id is None:
                with _unavailable("put"):
                    await self._client.put_object(
                        Bucket=self._bucket, Key=s3_key, Body=b"".join(pending),
                        ContentType=content_type,
                    )
                return size
            if pending:
                parts.append(await self._upload_part(
                    s3_key, upload_id, len(parts) + 1, b"".join(pending)
                ))
            with _unavailable("complete upload"):
                await self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=s3_key, UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]
                    },
                )
            upload_id = None
            return size
        finally:
            if upload_id is not None:
                await self._abort(s3_key, upload_id)

    async def _start_multipart(self, s3_key: str, content_type: str) -> str:
        with _unavailable("start upload"):
            started = await self._client.create_multipart_upload(
                Bucket=self._bucket, Key=s3_key, ContentType=content_type
            )
        return started["UploadId"]

    async def _upload_part(
        self, s3_key: str, upload_id: str, number: int, body: bytes
    ) -> tuple[int, str]:
        with _unavailable("upload part"):
            result = await self._client.upload_part(
                Bucket=self._bucket, Key=s3_key, UploadId=upload_id, PartNumber=number,
                Body=body,
            )
        return number, result["ETag"]

    async def _abort(self, s3_key: str, upload_id: str) -> None:
        # The original error is what matters; a failed abort is only logged (the bucket's
        # lifecycle rule for incomplete uploads is the backstop).
        try:
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=s3_key, UploadId=upload_id
            )
        except (BotoCoreError, ClientError):
            log.exception("could not abort multipart upload %s of %s", upload_id, s3_key)

    async def get(self, key: str) -> BlobStream:
        """Open the object for streaming; not_found if it does not exist."""
        s3_key = self._key(key)
        try:
            with _unavailable("get"):
                result = await self._client.get_object(Bucket=self._bucket, Key=s3_key)
        except AppError as exc:
            if _is_missing(exc.__cause__):
                raise AppError(NOT_FOUND, "file not found") from None
            raise
        body = result["Body"]

        async def read() -> bytes:
            try:
                return await body.read(READ_CHUNK)
            except (BotoCoreError, aiohttp.ClientError) as exc:
                raise AppError(UNAVAILABLE, f"blob store read failed: {exc}") from exc

        async def close() -> None:
            body.close()

        iterator = ChunkIterator(read, close)
        content_type = result.get("ContentType") or DEFAULT_CONTENT_TYPE
        return BlobStream(content_type, result["ContentLength"], iterator, iterator.aclose)

    async def delete(self, key: str) -> None:
        """Delete the object; S3 answers success for a missing key too."""
        with _unavailable("delete"):
            await self._client.delete_object(Bucket=self._bucket, Key=self._key(key))

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        try:
            with _unavailable("head"):
                await self._client.head_object(Bucket=self._bucket, Key=self._key(key))
        except AppError as exc:
            if _is_missing(exc.__cause__):
                return False
            raise
        return True

    async def ping(self) -> None:
        """Check that the bucket answers."""
        with _unavailable(f"bucket {self._bucket!r}"):
            await self._client.head_bucket(Bucket=self._bucket)

    async def close(self) -> None:
        """Close the S3 client."""
        await self._stack.aclose()


@contextlib.contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise AppError(UNAVAILABLE, f"blob store {what} failed: {exc}") from exc


def _error_code(exc: BaseException | None) -> str:
    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_missing(exc: BaseException | None) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")
