"""Hostile multipart bodies: many parts, big ignored parts, big fields, no boundary."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.payload import AsyncIterablePayload

from tests.client import Parlour, User, start_parlour

BOUNDARY = "hostile-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def many_parts(count: int, *, with_file: bool = True) -> bytes:
    """`count` empty fields named `x`, then (optionally) one small text file in `files`."""
    empty = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n'.encode()
    tail = b""
    if with_file:
        tail = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
            'filename="notes.txt"\r\nContent-Type: text/plain\r\n\r\n'
            "some notes\r\n"
        ).encode()
    return empty * count + tail + f"--{BOUNDARY}--\r\n".encode()


async def health_answers(server: Parlour) -> None:
    """/internal/health answers within a few seconds (it never waits behind a body)."""
    async with asyncio.timeout(5):
        async with server.http.get(f"{server.url}/internal/health") as resp:
            assert resp.status == 200


async def post_raw(
    server: Parlour, path: str, user: User | None, data: Any, content_type: str = MULTIPART,
) -> tuple[int, Any]:
    """POST a hand-made body; a refusal that cut the upload short still gives its status."""
    if isinstance(data, bytes):
        data = io.BytesIO(data)
    try:
        return await server.request("POST", path, user, data=data,
                                    headers={"Content-Type": content_type})
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise AssertionError(f"connection dropped instead of an answer: {exc!r}") from exc


async def test_200k_parts_are_refused_while_health_answers(parlour: Parlour) -> None:
    user = await parlour.signup()
    bystander = await parlour.socket(await parlour.signup())
    body = many_parts(200_000)  # 10.8 MB, as in the report
    for path in ("/api/v1/documents", "/api/v1/run"):
        upload = asyncio.create_task(post_raw(parlour, path, user, body))
        await asyncio.sleep(0.05)
        await health_answers(parlour)
        status, data = await upload
        assert status == 413, data
        assert data["error"]["code"] == "payload_too_large"
        # Uploads stop at the part count; /run's 10.8 MB is over its body cap already.
        assert "limits.max_multipart_parts" in data["error"]["message"] or (
            path == "/api/v1/run" and "limits.max_message_chars" in data["error"]["message"])
    await health_answers(parlour)
    _, docs = await parlour.request("GET", "/api/v1/documents", user)
    assert docs["documents"] == []
    # Another user's socket stayed connected and is served.
    assert bystander.sio.connected
    assert (await bystander.ok("create_room", {}))["room"]["room_id"]


async def test_many_parts_under_a_raised_cap_stream_without_blocking(make_settings: Any) -> None:
    """Under the cap, parts are skipped with the loop yielded to: health answers meanwhile."""
    server = await start_parlour(make_settings(limits__max_multipart_parts=1_000_000))
    try:
        user = await server.signup()
        upload = asyncio.create_task(
            post_raw(server, "/api/v1/documents", user, many_parts(30_000)))
        await asyncio.sleep(0.05)
        while not upload.done():
            await health_answers(server)
            await asyncio.sleep(0.2)
        status, data = await upload
        assert status == 202, data
        assert [d["filename"] for d in data["documents"]] == ["notes.txt"]
    finally:
        await server.close()


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`data` sent with chunked transfer encoding (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


def ignored_file_parts(count: int, size: int) -> bytes:
    """`count` fields of `size` bytes each (under the field cap), then one file."""
    field = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
             + b"a" * size + b"\r\n")
    return field * count + many_parts(0)


async def test_total_bytes_count_ignored_parts_and_fields_are_capped(make_settings: Any) -> None:
    server = await start_parlour(make_settings(
        limits__max_upload_mb=0.01, limits__max_files_per_upload=1,
        limits__max_multipart_field_kb=256,
    ))
    try:
        user = await server.signup()
        body = ignored_file_parts(10, 200 * 1024)  # 2 MB of fields, a 10-byte file
        # With Content-Length: refused before the body is read.
        status, data = await post_raw(server, "/api/v1/documents", user, body)
        assert status == 413, data
        assert "limits.max_upload_mb times limits.max_files_per_upload" in data["error"]["message"]
        # Streamed without a length: refused once the count passes the cap.
        status, data = await post_raw(
            server, "/api/v1/documents", user, AsyncIterablePayload(chunked(body)))
        assert status == 413, data
        assert data["error"]["code"] == "payload_too_large"

        # One field over limits.max_multipart_field_kb, on /run and on uploads.
        big = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="text"\r\n\r\n'.encode()
               + b"a" * 300 * 1024 + b"\r\n" + many_parts(0, with_file=False))
        for path in ("/api/v1/run", "/api/v1/documents"):
            status, data = await post_raw(server, path, user, big)
            assert status == 413, (path, data)
            assert data["error"]["message"].startswith("text: larger than 256 KB")
            assert "limits.max_multipart_field_kb" in data["error"]["message"]
        await health_answers(server)
    finally:
        await server.close()


async def test_multipart_without_a_boundary_is_a_clear_error(parlour: Parlour) -> None:
    user = await parlour.signup()
    status, data = await parlour.request("POST", "/api/v1/chat", user, json={})
    chat_id = data["chat_id"]
    for path in ("/api/v1/documents", f"/api/v1/chat/{chat_id}/upload", "/api/v1/run",
                 "/api/v1/auth/token"):
        status, data = await post_raw(parlour, path, user, b"--x\r\n\r\n",
                                      content_type="multipart/form-data")
        assert status == 422, (path, data)
        assert data["error"]["code"] == "invalid_payload"
        assert "boundary" in data["error"]["message"]


async def test_urlencoded_forms_cap_their_field_count(parlour: Parlour) -> None:
    body = "&".join(f"f{i}=" for i in range(5000)) + "&username=a@b.c&password=x"
    status, data = await post_raw(parlour, "/api/v1/auth/token", None,
                                  body, content_type="application/x-www-form-urlencoded")
    assert status == 413, data
    assert "limits.max_multipart_parts" in data["error"]["message"]
