"""`/api/v1/chat/{chat_id}/upload` and `/files`: a room's files over REST."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import hdrs, web

from app.errors import UNAVAILABLE, AppError, invalid
from app.files import FileService, UploadPart, file_json
from app.filetypes import served_inline
from handlers.common import SETTINGS, json_response, principal, services
from handlers.multipart import CappedMultipart, MultipartCaps
from storage.blobs import BlobStream
from storage.files import FileRecord


def file_service(request: web.Request) -> FileService:
    """The app's file service (absent only if retrieval failed to start)."""
    files = services(request).files
    if files is None:
        raise AppError(UNAVAILABLE, "file storage is not configured")
    return files


def _no_files_part(others: list[str]) -> AppError:
    # e.g. `curl -F file=@x`: say which field was expected.
    return invalid(
        f"files: no part named `files` (got {', '.join(others[:5])}); send each "
        "file as a part named `files`, e.g. curl -F files=@report.pdf"
    )


async def upload_parts(request: web.Request) -> AsyncIterator[UploadPart]:
    """The `files` parts of a multipart body, each streamed as it arrives (within caps)."""
    if not request.content_type.startswith("multipart/"):
        raise invalid("body: expected multipart/form-data with one or more `files` parts")
    body = CappedMultipart(request, MultipartCaps.for_uploads(request.app[SETTINGS].limits))
    found = False
    others: list[str] = []
    async for part in body.parts():
        if part.name != "files":
            if part.filename is not None and len(others) < 20:
                others.append(f"`{part.name}`")
            if await body.field(part) is None:
                if part.filename is not None and not found:
                    raise _no_files_part(others)
                raise body.field_too_large(part.name)
            continue
        found = True
        yield UploadPart(part.filename, part.headers.get(hdrs.CONTENT_TYPE), body.chunks(part))
    if not found and others:
        raise _no_files_part(others)


def content_disposition(filename: str, content_type: str = "") -> str:
    """`attachment` (or `inline` for images, audio, video), the name in RFC 5987 form.

    Anything a browser could run as a page (HTML, SVG, XML, PDF, text) is an attachment,
    so an upload never executes script on our origin.
    """
    mode = "inline" if served_inline(content_type) else "attachment"
    return f"{mode}; filename*=UTF-8''{quote(filename, safe='')}"


async def upload(request: web.Request) -> web.Response:
    records = await file_service(request).upload_to_chat(
        principal(request), request.match_info["chat_id"], upload_parts(request)
    )
    return json_response({"files": [file_json(r) for r in records]}, status=201)


async def list_files(request: web.Request) -> web.Response:
    records = await file_service(request).list_chat(
        principal(request), request.match_info["chat_id"]
    )
    return json_response({"files": [file_json(r) for r in records]})


async def download(request: web.Request) -> web.StreamResponse:
    record, blob = await file_service(request).open_chat_file(
        principal(request), request.match_info["chat_id"], request.match_info["file_id"]
    )
    return await send_file(request, record, blob)


async def send_file(
    request: web.Request, record: FileRecord, blob: BlobStream
) -> web.StreamResponse:
    """Stream a stored file as an attachment with its content type."""
    try:
        response = web.StreamResponse(headers={
            hdrs.CONTENT_TYPE: record.content_type,
            hdrs.CONTENT_DISPOSITION: content_disposition(record.filename, record.content_type),
            "X-Content-Type-Options": "nosniff",
            # Opened directly anyway, the file runs nothing and reaches nothing.
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'; "
                                       "style-src 'unsafe-inline'; sandbox",
        })
        response.content_length = blob.length
        await response.prepare(request)
        async for chunk in blob.chunks:
            await response.write(chunk)
        await response.write_eof()
    finally:
        await blob.aclose()
    return response


async def delete_file(request: web.Request) -> web.Response:
    await file_service(request).delete_chat_file(
        principal(request), request.match_info["chat_id"], request.match_info["file_id"]
    )
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    """Register the chat file routes."""
    app.router.add_post("/api/v1/chat/{chat_id}/upload", upload)
    app.router.add_get("/api/v1/chat/{chat_id}/files", list_files)
    app.router.add_get("/api/v1/chat/{chat_id}/files/{file_id}", download)
    app.router.add_delete("/api/v1/chat/{chat_id}/files/{file_id}", delete_file)
