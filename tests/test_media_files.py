"""Any file in a chat: photos and archives are kept, executables refused, types sniffed
from the bytes, and downloads that a browser would render come as attachments."""

from __future__ import annotations

from typing import Any

from tests.client import Parlour, User
from tests.media_fixtures import SVG, png, zip_archive
from tests.test_files import chat_file, new_chat, upload, wait_status


async def download(parlour: Parlour, user: User, chat_id: str, file_id: str) -> Any:
    url = f"{parlour.url}/api/v1/chat/{chat_id}/files/{file_id}"
    async with parlour.http.get(url, headers={"Authorization": f"Bearer {user.token}"}) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_a_photo_and_a_zip_are_kept_and_a_text_file_is_still_ingested(
    parlour: Parlour,
) -> None:
    user = await parlour.signup()
    chat_id = await new_chat(parlour, user)
    photo, archive = png(), zip_archive()
    status, data = await upload(
        parlour, user, chat_id, ("holiday.png", photo, "image/png"),
        ("photos.zip", archive, "application/zip"), ("notes.txt", b"the notes", "text/plain"),
    )
    assert status == 201, data
    image, zipped, notes = data["files"]
    assert (image["status"], image["content_type"]) == ("stored", "image/png")
    assert zipped["status"] == "stored" and "zip" in zipped["content_type"]
    assert notes["status"] == "processing"
    await wait_status(parlour, user, f"/api/v1/chat/{chat_id}/files", "ready")
    assert (await chat_file(parlour, user, chat_id, image["file_id"]))["status"] == "stored"

    status, headers, body = await download(parlour, user, chat_id, image["file_id"])
    assert status == 200 and body == photo
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"].startswith("inline;")  # a thumbnail can show it
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = await download(parlour, user, chat_id, zipped["file_id"])
    assert body == archive and headers["Content-Disposition"].startswith("attachment;")


async def test_the_type_comes_from_the_bytes_not_the_name(parlour: Parlour) -> None:
    user = await parlour.signup()
    chat_id = await new_chat(parlour, user)
    # A PNG called notes.txt and sent as text is an image: kept, never read as text.
    status, data = await upload(parlour, user, chat_id, ("notes.txt", png(), "text/plain"),
                                ("scan", b"%PDF-1.4 not really", "application/octet-stream"))
    assert status == 201, data
    fake_text, scan = data["files"]
    assert (fake_text["status"], fake_text["content_type"]) == ("stored", "image/png")
    assert scan["content_type"] == "application/pdf" and scan["status"] == "processing"


async def test_svg_and_html_downloads_are_attachments_never_inline(parlour: Parlour) -> None:
    user = await parlour.signup()
    chat_id = await new_chat(parlour, user)
    status, data = await upload(parlour, user, chat_id, ("logo.svg", SVG, "image/svg+xml"),
                                ("page.html", b"<script>alert(1)</script><p>hi</p>", "text/html"))
    assert status == 201, data
    for record in data["files"]:
        status, headers, _ = await download(parlour, user, chat_id, record["file_id"])
        assert status == 200
        assert headers["Content-Disposition"].startswith("attachment;"), headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]
    svg_headers = (await download(parlour, user, chat_id, data["files"][0]["file_id"]))[1]
    assert svg_headers["Content-Type"] == "image/svg+xml"


async def test_executables_are_refused_by_name_and_by_bytes(make_settings: Any) -> None:
    from tests.client import start_parlour

    server = await start_parlour(make_settings(limits__blocked_upload_types=[".exe"]))
    try:
        user = await server.signup()
        chat_id = await new_chat(server, user)
        status, data = await upload(server, user, chat_id, ("setup.exe", b"MZ\x90\x00" * 10, None))
        assert status == 422 and data["error"]["code"] == "invalid_payload"
        assert "setup.exe" in data["error"]["message"]
        # Only what is configured is blocked: the ELF file is accepted here.
        status, data = await upload(server, user, chat_id, ("tool", b"\x7fELF\x02\x01", None))
        assert status == 201 and data["files"][0]["status"] == "stored", data
    finally:
        await server.close()
