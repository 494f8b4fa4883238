"""`/api/v1/documents`: the caller's knowledge base over REST."""

from __future__ import annotations

from aiohttp import web

from app.files import document_json
from handlers.common import json_response, principal
from handlers.files import file_service, send_file, upload_parts


async def upload(request: web.Request) -> web.Response:
    records = await file_service(request).upload_documents(
        principal(request), upload_parts(request)
    )
    return json_response({"documents": [document_json(r) for r in records]}, status=202)


async def list_documents(request: web.Request) -> web.Response:
    records = await file_service(request).list_documents(principal(request))
    return json_response({"documents": [document_json(r) for r in records]})


async def get_document(request: web.Request) -> web.Response:
    record = await file_service(request).get_document(
        principal(request), request.match_info["document_id"]
    )
    return json_response(document_json(record))


async def download_document(request: web.Request) -> web.StreamResponse:
    record, blob = await file_service(request).open_document(
        principal(request), request.match_info["document_id"]
    )
    return await send_file(request, record, blob)


async def delete_document(request: web.Request) -> web.Response:
    await file_service(request).delete_document(
        principal(request), request.match_info["document_id"]
    )
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    """Register the document routes."""
    app.router.add_post("/api/v1/documents", upload)
    app.router.add_get("/api/v1/documents", list_documents)
    app.router.add_get("/api/v1/documents/{document_id}", get_document)
    app.router.add_get("/api/v1/documents/{document_id}/content", download_document)
    app.router.add_delete("/api/v1/documents/{document_id}", delete_document)
