"""The input of `/run` and `/run/audio`: JSON, a form, or multipart with `files`.

JSON takes `attachments: [{filename, content_type, data_base64}]`; multipart takes any
number of `files` parts beside the text fields. Everything is read into memory, bounded:
at most `limits.max_upload_mb` in all and `limits.max_files_per_upload` files.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import orjson
from aiohttp import BodyPartReader, web
from pydantic import Field

from app.errors import INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError, invalid
from app.files import safe_filename
from app.media.attachments import Attachment
from app.schemas import Payload, parse
from handlers.common import form, services
from handlers.multipart import MIB, CappedMultipart, MultipartCaps

READ_CHUNK = 256 * 1024
FIELD_BYTES = 1024 * 1024  # one text field of a multipart body


class JsonAttachment(Payload):
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str | None = Field(None, max_length=200)
    data_base64: str


class Run(Payload):
    text: str = ""
    model: str | None = None
    chat_id: str | None = Field(None, min_length=1, max_length=128)
    attachments: list[JsonAttachment] = Field(default_factory=list, max_length=100)


@dataclass(slots=True)
class RunInput:
    """A question: its text, the model and chat asked for, and its attachments."""

    text: str
    model: str | None
    chat_id: str | None
    attachments: list[Attachment] = field(default_factory=list)


class _Budget:
    def __init__(self, request: web.Request) -> None:
        limits = services(request).settings.limits
        self.max_bytes = int(limits.max_upload_mb * 1024 * 1024)
        self.max_files = limits.max_files_per_upload
        self.used = 0
        self.files = 0

    def take(self, size: int, what: str) -> None:
        self.used += size
        if self.used > self.max_bytes:
            raise AppError(PAYLOAD_TOO_LARGE, f"{what}: the attachments exceed "
                           f"{self.max_bytes // (1024 * 1024)} MB (limits.max_upload_mb)")

    def count(self) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise invalid(f"files: at most {self.max_files} attachments "
                          "(limits.max_files_per_upload)")


async def read_run_input(request: web.Request) -> RunInput:
    """The question in whichever body shape it came."""
    budget = _Budget(request)
    if request.content_type == "application/x-www-form-urlencoded":
        req = parse(Run, await form(request))
        return _checked(RunInput(req.text, req.model, req.chat_id))
    if request.content_type.startswith("multipart/"):
        return _checked(await _multipart(request, budget))
    raw = await _read_json(request, budget)
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise AppError(INVALID_PAYLOAD, "body: not valid JSON") from exc
    req = parse(Run, data)
    attachments: list[Attachment] = []
    for index, item in enumerate(req.attachments):
        budget.count()
        try:
            payload = base64.b64decode(item.data_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise invalid(f"attachments[{index}].data_base64: not valid base64") from exc
        name = safe_filename(item.filename)
        if not payload:
            raise invalid(f"{name}: the file is empty")
        attachments.append(Attachment(name, item.content_type, payload))
    return _checked(RunInput(req.text, req.model, req.chat_id, attachments))


def _checked(run: RunInput) -> RunInput:
    if not run.text.strip() and not run.attachments:
        raise invalid("text: must not be empty (or attach a file)")
    return run


async def _read_json(request: web.Request, budget: _Budget) -> bytes:
    # Base64 attachments make JSON bodies larger than the usual JSON cap: read it here.
    limit = budget.max_bytes * 4 // 3 + 1024 * 1024
    if request.content_length is not None and request.content_length > limit:
        raise AppError(PAYLOAD_TOO_LARGE, f"body: larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise AppError(PAYLOAD_TOO_LARGE, f"body: larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def run_caps(request: web.Request) -> MultipartCaps:
    """Multipart caps of /run: the attachments' budget plus the text fields."""
    limits = services(request).settings.limits
    field = int(limits.max_multipart_field_kb * 1024)
    total = int(limits.max_upload_mb * MIB) + 4 * field + MIB
    return MultipartCaps(limits.max_multipart_parts, total, field,
                         "limits.max_upload_mb for the attachments of one request")


async def _multipart(request: web.Request, budget: _Budget) -> RunInput:
    body = CappedMultipart(request, run_caps(request))
    fields: dict[str, str] = {}
    attachments: list[Attachment] = []
    async for part in body.parts():
        if part.filename is None:
            raw = await body.field(part)
            if raw is None:
                raise body.field_too_large(part.name)
            if part.name is not None:
                fields[part.name] = part.decode(raw).decode(errors="replace")
            continue
        if part.name not in ("files", "file"):
            raise invalid(f"{part.name}: send attachments as parts named `files`")
        budget.count()
        name = safe_filename(part.filename)
        data = await read_part(body, part, budget.max_bytes - budget.used, name)
        budget.take(len(data), name)
        if not data:
            raise invalid(f"{name}: the file is empty")
        attachments.append(Attachment(name, part.headers.get("Content-Type"), data))
    req = parse(Run, fields)
    return RunInput(req.text, req.model, req.chat_id, attachments)


async def read_part(body: CappedMultipart, part: BodyPartReader, limit: int, what: str) -> bytes:
    """A file part's bytes, at most `limit` (`payload_too_large` naming it beyond)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body.chunks(part):
        size += len(chunk)
        if size > limit:
            raise AppError(PAYLOAD_TOO_LARGE, f"{what}: too large")
        chunks.append(chunk)
    return b"".join(chunks)
