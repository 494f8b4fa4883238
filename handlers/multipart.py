"""Multipart bodies read under caps: part count, total bytes, field size; never hogging the loop.

aiohttp's reader parses parts that are already buffered without ever suspending, and it
does not apply `client_max_size` to a streamed body. So every multipart route goes
through here: the body's bytes are counted as they arrive (ignored parts included), the
parts are counted, a plain field is read up to a cap, and the loop is yielded to every
few parts so other requests and sockets keep being served while a body streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from app.config import LimitsSettings
from app.errors import PAYLOAD_TOO_LARGE, AppError, invalid

READ_CHUNK = 256 * 1024  # a file part's read size
# A field's read size. aiohttp reads this much past a short part's end and pushes the
# rest back, so a large size costs a large copy per part (100,000 parts: minutes).
FIELD_CHUNK = 8 * 1024
YIELD_EVERY = 16  # parts between two returns to the event loop
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MultipartCaps:
    """The most parts, body bytes and bytes per plain field one request may hold."""

    parts: int
    total_bytes: int
    field_bytes: int
    total_key: str  # the setting(s) the total comes from, named in the error

    @classmethod
    def for_uploads(cls, limits: LimitsSettings) -> MultipartCaps:
        """File uploads: every file at its size cap, plus one field cap of slack."""
        field = int(limits.max_multipart_field_kb * 1024)
        total = int(limits.max_upload_mb * MIB) * limits.max_files_per_upload + field + MIB
        return cls(limits.max_multipart_parts, total, field,
                   "limits.max_upload_mb times limits.max_files_per_upload")

    @classmethod
    def for_fields(cls, limits: LimitsSettings, transport_cap: int) -> MultipartCaps:
        """Forms of plain fields (`/run`): the same total as a JSON body."""
        field = int(limits.max_multipart_field_kb * 1024)
        return cls(limits.max_multipart_parts, transport_cap, field,
                   "the request body cap, from limits.max_message_chars")


class CappedMultipart:
    """The parts of one request's multipart body, read within `caps`."""

    def __init__(self, request: web.Request, caps: MultipartCaps) -> None:
        self._request = request
        self._caps = caps
        self._count = 0

    def _too_large(self) -> AppError:
        mib = self._caps.total_bytes / MIB
        return AppError(
            PAYLOAD_TOO_LARGE,
            f"body: larger than {mib:.1f} MB in all ({self._caps.total_key})",
        )

    def check_total(self) -> None:
        """`payload_too_large` once more than the total cap has arrived."""
        if self._request.content.total_bytes > self._caps.total_bytes:
            raise self._too_large()

    async def parts(self) -> AsyncIterator[BodyPartReader]:
        """Each part in turn; the caller reads or drains it before asking for the next."""
        length = self._request.content_length
        if length is not None and length > self._caps.total_bytes:
            raise self._too_large()  # refused before reading a byte
        try:
            reader = await self._request.multipart()
        except (ValueError, AssertionError, KeyError) as exc:
            raise invalid(
                "body: malformed multipart/form-data (the Content-Type needs a boundary, "
                "e.g. multipart/form-data; boundary=...)"
            ) from exc
        while True:
            self.check_total()
            try:
                part = await reader.next()
            except (HttpProcessingError, ValueError, AssertionError) as exc:
                raise invalid(f"body: malformed multipart data ({type(exc).__name__})") from exc
            if part is None:
                return
            self._count += 1
            if self._count > self._caps.parts:
                raise AppError(
                    PAYLOAD_TOO_LARGE,
                    f"body: more than {self._caps.parts} parts (limits.max_multipart_parts)",
                )
            if self._count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if not isinstance(part, BodyPartReader):
                raise invalid("body: nested multipart bodies are not supported")
            yield part
            self.check_total()

    async def chunks(self, part: BodyPartReader, size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        """A part's bytes as they arrive, within the total cap."""
        while chunk := await part.read_chunk(size):
            self.check_total()
            yield chunk
            await asyncio.sleep(0)

    async def field(self, part: BodyPartReader) -> bytes | None:
        """A plain field's bytes; None when it is larger than the field cap (the rest drained)."""
        data = bytearray()
        async for chunk in self.chunks(part, FIELD_CHUNK):
            if len(data) + len(chunk) > self._caps.field_bytes:
                await self.drain(part)
                return None
            data += chunk
        return bytes(data)

    def field_too_large(self, name: str | None) -> AppError:
        """`payload_too_large` naming the field and the setting."""
        return AppError(
            PAYLOAD_TOO_LARGE,
            f"{name or 'field'}: larger than {self._caps.field_bytes // 1024} KB "
            "(limits.max_multipart_field_kb)",
        )

    async def drain(self, part: BodyPartReader) -> None:
        """Skip a part's bytes (counted, with the loop yielded to)."""
        async for _ in self.chunks(part, FIELD_CHUNK):
            pass


async def form_fields(
    request: web.Request, caps: MultipartCaps, *, files_refused: str | None = None,
) -> dict[str, str]:
    """The plain fields of a multipart form; file parts are skipped, or refused with a reason."""
    capped = CappedMultipart(request, caps)
    fields: dict[str, str] = {}
    async for part in capped.parts():
        if part.filename is not None and files_refused is not None:
            raise invalid(f"{part.name}: {files_refused}")
        raw = await capped.field(part)
        if raw is None:
            raise capped.field_too_large(part.name)
        if part.name is not None and part.filename is None:
            fields[part.name] = part.decode(raw).decode(errors="replace")
    return fields
