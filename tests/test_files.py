"""Chat files over REST on real servers: local dir and moto S3 blobs, limits, access, cascade."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
import pytest
from aiohttp.payload import AsyncIterablePayload

from app.keys import BLOBS, EMBEDDER, VECTORS
from tests.client import Parlour, User, start_parlour

FileSpec = tuple[str, bytes, str | None]


# -- helpers shared by the retrieval and document tests --------------------------------------


def form(*files: FileSpec) -> aiohttp.FormData:
    """A multipart body with one `files` part per (name, bytes, content type)."""
    data = aiohttp.FormData()
    for name, body, content_type in files:
        data.add_field("files", body, filename=name, content_type=content_type or "")
    return data


def raw_multipart(disposition: bytes, body: bytes, content_type: bytes = b"text/plain") -> bytes:
    """A one-part multipart body with a hand-written Content-Disposition (boundary XyZ)."""
    return (
        b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\nContent-Type: " + content_type
        + b"\r\n\r\n" + body + b"\r\n--XyZ--\r\n"
    )


async def new_chat(parlour: Parlour, user: User, **fields: Any) -> str:
    """A new chat owned by `user`; its id."""
    status, chat = await parlour.request("POST", "/api/v1/chat", user, json=fields)
    assert status == 201, chat
    chat_id: str = chat["chat_id"]
    return chat_id


async def upload(parlour: Parlour, user: User, chat_id: str, *files: FileSpec) -> tuple[int, Any]:
    """POST the files to the chat's upload route."""
    return await parlour.request(
        "POST", f"/api/v1/chat/{chat_id}/upload", user, data=form(*files)
    )


async def wait_status(
    parlour: Parlour, user: User, path: str, want: str = "ready", timeout: float = 60
) -> dict[str, Any]:
    """Poll a file or document record until its status is final; assert it is `want`."""
    deadline = time.monotonic() + timeout
    while True:
        status, data = await parlour.request("GET", path, user)
        assert status == 200, data
        record = data if "status" in data else data["files"][0]
        if record["status"] != "processing":
            assert record["status"] == want, record
            return dict(record)
        assert time.monotonic() < deadline, record
        await asyncio.sleep(0.1)


async def chat_file(parlour: Parlour, user: User, chat_id: str, file_id: str) -> dict[str, Any]:
    """One file record from the chat's listing."""
    _, data = await parlour.request("GET", f"/api/v1/chat/{chat_id}/files", user)
    found = [f for f in data["files"] if f["file_id"] == file_id]
    assert found, data
    return dict(found[0])


async def wait_file_ready(
    parlour: Parlour, user: User, chat_id: str, file_id: str, want: str = "ready"
) -> dict[str, Any]:
    """Wait until a chat file's ingestion finished; assert its status."""
    deadline = time.monotonic() + 60
    while (record := await chat_file(parlour, user, chat_id, file_id))["status"] == "processing":
        assert time.monotonic() < deadline, record
        await asyncio.sleep(0.1)
    assert record["status"] == want, record
    return record


async def file_records(parlour: Parlour) -> list[dict[str, Any]]:
    """Every file record in MongoDB (whatever its state)."""
    return list(await parlour.services.mongo.collection("files").find({}).to_list())


async def blob_key(parlour: Parlour, file_id: str) -> str:
    """The object key a file record points at."""
    stored = await parlour.services.mongo.collection("files").find_one({"_id": file_id})
    assert stored is not None
    return str(stored["key"])


async def vectors_of(parlour: Parlour, namespace: str) -> list[Any]:
    """Whatever the vector store holds in a namespace (nearest to a probe text)."""
    probe = (await parlour.runner.app[EMBEDDER].embed(["probe"]))[0]
    return list(await parlour.runner.app[VECTORS].query(namespace, probe, 50))


def s3_overrides(moto_endpoint: str, bucket: str) -> dict[str, Any]:
    """Settings for blobs in moto."""
    return {"blobs__backend": "s3", "blobs__s3_endpoint_url": moto_endpoint,
            "blobs__s3_bucket": bucket, "blobs__s3_path_style": True}


async def create_bucket(moto_endpoint: str, name: str) -> None:
    """Create a bucket in moto."""
    session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                               region_name="us-east-1")
    async with session.client("s3", endpoint_url=moto_endpoint) as client:
        await client.create_bucket(Bucket=name)


@pytest.fixture(params=["local", "s3"])
async def server(
    request: pytest.FixtureRequest, make_settings: Any, moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Parlour]:
    """A Parlour with blobs in a local directory or in moto S3."""
    overrides: dict[str, Any] = {}
    if request.param == "s3":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        bucket = f"files-{uuid.uuid4().hex[:12]}"
        await create_bucket(moto_endpoint, bucket)
        overrides = s3_overrides(moto_endpoint, bucket)
    parlour = await start_parlour(make_settings(**overrides))
    yield parlour
    await parlour.close()


# -- tests -------------------------------------------------------------------------------------


async def test_upload_several_download_identical_delete_idempotent(server: Parlour) -> None:
    user = await server.signup()
    chat_id = await new_chat(server, user)
    files = [
        ("notes.txt", b"plain text notes\n" * 100, "text/plain"),
        ("readme.md", "# Caf\u00e9 \u2615\n\nmarkdown".encode(), "text/markdown"),
        ("page.html", b"<html><body><p>hello page</p></body></html>", "text/html"),
    ]
    status, data = await upload(server, user, chat_id, *files)
    assert status == 201, data
    records = data["files"]
    assert [r["filename"] for r in records] == ["notes.txt", "readme.md", "page.html"]
    for record, (_, body, _) in zip(records, files, strict=True):
        assert record["size"] == len(body)
        assert record["sha256"] == hashlib.sha256(body).hexdigest()
        assert record["chat_id"] == chat_id and record["uploaded_by"] == user.user_id
        assert record["document_id"] == record["file_id"]
        assert record["status"] == "processing"

    status, listed = await server.request("GET", f"/api/v1/chat/{chat_id}/files", user)
    assert status == 200 and {f["file_id"] for f in listed["files"]} == {
        r["file_id"] for r in records}

    for record, (name, body, content_type) in zip(records, files, strict=True):
        url = f"{server.url}/api/v1/chat/{chat_id}/files/{record['file_id']}"
        headers = {"Authorization": f"Bearer {user.token}"}
        async with server.http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert await resp.read() == body
            assert resp.headers["Content-Type"] == content_type
            assert resp.headers["Content-Disposition"] == f"attachment; filename*=UTF-8''{name}"
            assert resp.headers["Content-Length"] == str(len(body))

    gone = records[0]["file_id"]
    key = await blob_key(server, gone)
    path = f"/api/v1/chat/{chat_id}/files/{gone}"
    assert (await server.request("DELETE", path, user))[0] == 204
    assert (await server.request("DELETE", path, user))[0] == 204
    assert (await server.request("GET", path, user))[0] == 404
    assert not await server.runner.app[BLOBS].exists(key)
    _, listed = await server.request("GET", f"/api/v1/chat/{chat_id}/files", user)
    assert gone not in {f["file_id"] for f in listed["files"]}
    for record in records[1:]:
        await wait_file_ready(server, user, chat_id, record["file_id"])


async def test_over_the_size_limit_is_413_and_leaves_nothing(
    make_settings: Any, tmp_path: Path
) -> None:
    server = await start_parlour(make_settings(limits__max_upload_mb=0.01))
    try:
        user = await server.signup()
        chat_id = await new_chat(server, user)
        status, data = await upload(server, user, chat_id, ("big.txt", b"x" * 50_000, None))
        assert status == 413 and data["error"]["code"] == "payload_too_large", data
        # A good file before a too-large one in the same request goes too.
        status, data = await upload(
            server, user, chat_id, ("ok.txt", b"small", None), ("big.txt", b"y" * 50_000, None)
        )
        assert status == 413, data
        assert await file_records(server) == []
        _, listed = await server.request("GET", f"/api/v1/chat/{chat_id}/files", user)
        assert listed == {"files": []}
        blob_files = [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
        assert blob_files == []
        metrics = await server.http.get(f"{server.url}/internal/metrics")
        assert 'parlour_uploads_total{outcome="payload_too_large"} 2.0' in await metrics.text()
    finally:
        await server.close()


async def test_too_many_files_in_one_upload_is_refused(make_settings: Any) -> None:
    server = await start_parlour(make_settings(limits__max_files_per_upload=2))
    try:
        user = await server.signup()
        chat_id = await new_chat(server, user)
        status, data = await upload(server, user, chat_id, *[
            (f"f{i}.txt", b"text", None) for i in range(3)])
        assert status == 422 and "at most 2" in data["error"]["message"], data
        assert await file_records(server) == []
        status, data = await upload(server, user, chat_id, ("a.txt", b"a", None),
                                    ("b.txt", b"b", None))
        assert status == 201 and len(data["files"]) == 2
    finally:
        await server.close()


async def test_blocked_type_is_422_before_storing(parlour: Parlour) -> None:
    user = await parlour.signup()
    chat_id = await new_chat(parlour, user)
    status, data = await upload(parlour, user, chat_id, ("tool.exe", b"MZ\x90\x00", None))
    assert status == 422 and data["error"]["code"] == "invalid_payload"
    assert "tool.exe" in data["error"]["message"] and "blocked" in data["error"]["message"]
    # Renamed, it is still an executable by its bytes.
    status, data = await upload(parlour, user, chat_id, ("notes.dat", b"\x7fELF\x02\x01", None))
    assert status == 422 and "blocked" in data["error"]["message"], data
    status, data = await parlour.request(
        "POST", f"/api/v1/chat/{chat_id}/upload", user, json={"files": "nope"}
    )
    assert status == 422, data
    assert await file_records(parlour) == []


async def test_hostile_filenames_get_a_generated_key_and_a_safe_name(parlour: Parlour) -> None:
    user = await parlour.signup()
    chat_id = await new_chat(parlour, user)
    status, data = await upload(parlour, user, chat_id, ("../../etc/passwd", b"root:x", "text/plain"))
    assert status == 201, data
    (passwd,) = data["files"]
    assert passwd["filename"] == "passwd"
    status, data = await parlour.request(
        "POST", f"/api/v1/chat/{chat_id}/upload", user,
        data=raw_multipart(b'form-data; name="files"; filename="..\\..\\x/../../etc/passwd"',
                           b"raw"),
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert status == 201 and data["files"][0]["filename"] == "passwd", data
    status, data = await parlour.request(
        "POST", f"/api/v1/chat/{chat_id}/upload", user,
        data=raw_multipart(b"form-data; name=\"files\"; filename*=UTF-8''..%2Fevil%00na%07me.txt",
                           b"nul"),
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert status == 201, data
    (evil,) = data["files"]
    assert evil["filename"] == "evilname.txt"
    # A raw control character in the part's headers is refused, not a crash.
    status, data = await parlour.request(
        "POST", f"/api/v1/chat/{chat_id}/upload", user,
        data=raw_multipart(b'form-data; name="files"; filename="a\x00b.txt"', b"x"),
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert status == 422, data
    for record in (passwd, evil):
        key = await blob_key(parlour, record["file_id"])
        assert key == f"chats/{chat_id}/{record['file_id']}"
    url = f"{parlour.url}/api/v1/chat/{chat_id}/files/{evil['file_id']}"
    async with parlour.http.get(url, headers={"Authorization": f"Bearer {user.token}"}) as resp:
        assert resp.headers["Content-Disposition"] == "attachment; filename*=UTF-8''evilname.txt"
        assert await resp.read() == b"nul"


async def test_only_members_touch_files_and_viewers_cannot_upload(parlour: Parlour) -> None:
    owner, stranger, viewer = (await parlour.signup(), await parlour.signup(),
                               await parlour.signup())
    chat_id = await new_chat(parlour, owner)
    s = await parlour.socket(owner)
    await s.ok("invite", {"room_id": chat_id, "email": viewer.email, "role": "viewer"})
    _, data = await upload(parlour, owner, chat_id, ("a.txt", b"secret", None))
    file_id = data["files"][0]["file_id"]
    base = f"/api/v1/chat/{chat_id}"
    for method, path in [("GET", "/files"), ("GET", f"/files/{file_id}"),
                         ("DELETE", f"/files/{file_id}")]:
        status, body = await parlour.request(method, base + path, stranger)
        assert status == 404 and body["error"]["code"] == "not_found", (path, body)
    status, body = await upload(parlour, stranger, chat_id, ("b.txt", b"x", None))
    assert status == 404, body
    status, body = await upload(parlour, viewer, chat_id, ("b.txt", b"x", None))
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await parlour.request("GET", base + f"/files/{file_id}", viewer))[0] == 200
    assert (await parlour.request("GET", base + "/files", owner))[0] == 200
    # A public room shows its messages to anyone, its files to members only.
    await s.ok("update_room", {"room_id": chat_id, "visibility": "public"})
    assert (await parlour.request("GET", base, stranger))[0] == 200
    assert (await parlour.request("GET", base + "/files", stranger))[0] == 404
    assert (await parlour.request("GET", base + f"/files/{file_id}", stranger))[0] == 404
    # A message may attach only files of its own room.
    other_chat = await new_chat(parlour, owner)
    ack = await s.call("send_message", {"room_id": other_chat, "content": "see",
                                        "file_ids": [file_id]})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    await s.ok("update_room", {"room_id": chat_id, "assistant_mode": "off"})
    sent = await s.ok("send_message", {"room_id": chat_id, "content": "see",
                                       "file_ids": [file_id]})
    assert sent["message"]["file_ids"] == [file_id]


async def test_s3_failure_is_503_without_orphan_records(
    make_settings: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    missing = f"missing-{uuid.uuid4().hex[:12]}"  # never created: every write fails
    server = await start_parlour(make_settings(**s3_overrides(moto_endpoint, missing)))
    try:
        user = await server.signup()
        chat_id = await new_chat(server, user)
        status, data = await upload(server, user, chat_id, ("a.txt", b"a" * 1000, None),
                                    ("b.txt", b"b" * 1000, None))
        assert status == 503 and data["error"]["code"] == "unavailable", data
        assert await file_records(server) == []
        _, health = await server.request("GET", "/internal/health")
        assert health["checks"]["blobs"]["ok"] is False
        assert health["checks"]["vectors"]["ok"] is True
    finally:
        await server.close()


async def test_deleting_a_chat_deletes_its_blobs_vectors_and_records(server: Parlour) -> None:
    user = await server.signup()
    chat_id = await new_chat(server, user)
    _, data = await upload(server, user, chat_id,
                           ("facts.txt", b"The lighthouse keeper feeds seven cats.", None))
    file_id = data["files"][0]["file_id"]
    record = await wait_file_ready(server, user, chat_id, file_id)
    assert record["chunks"] == 1 and record["progress"] == 1.0
    key = (await file_records(server))[0]["key"]
    assert await server.runner.app[BLOBS].exists(key)
    assert [v.metadata["document_id"] for v in await vectors_of(server, f"chat:{chat_id}")] == [
        file_id]

    assert (await server.request("DELETE", f"/api/v1/chat/{chat_id}", user))[0] == 204
    assert not await server.runner.app[BLOBS].exists(key)
    assert await vectors_of(server, f"chat:{chat_id}") == []
    assert await file_records(server) == []


async def chunks_of_text(total: int, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """`total` bytes of text, made as they are sent."""
    line = b"all work and no play makes a dull upload\n"
    block = (line * (size // len(line) + 1))[:size]
    sent = 0
    while sent < total:
        piece = block[: min(size, total - sent)]
        sent += len(piece)
        yield piece


def rss_mb() -> float:
    """This process's resident set size (the server runs in it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
async def test_large_upload_streams_in_bounded_memory(make_settings: Any) -> None:
    total = 300 * 1024 * 1024
    server = await start_parlour(make_settings(limits__max_upload_mb=400))
    try:
        user = await server.signup()
        chat_id = await new_chat(server, user)
        # Warm up (and load the embedding model) with a small file first.
        _, warm = await upload(server, user, chat_id, ("warm.txt", b"warm up words " * 1000, None))
        await wait_file_ready(server, user, chat_id, warm["files"][0]["file_id"])
        before = rss_mb()
        writer = aiohttp.MultipartWriter("form-data")
        part = writer.append_payload(AsyncIterablePayload(chunks_of_text(total)))
        part.set_content_disposition("form-data", name="files", filename="big.txt")
        part.headers["Content-Type"] = "text/plain"
        started = time.perf_counter()
        status, data = await server.request(
            "POST", f"/api/v1/chat/{chat_id}/upload", user, data=writer
        )
        elapsed = time.perf_counter() - started
        grown = rss_mb() - before
        assert status == 201, data
        assert data["files"][0]["size"] == total
        print(f"upload of {total >> 20} MB: {total / elapsed / 2**20:.0f} MB/s, "
              f"RSS grew {grown:.1f} MB")
        assert grown < 50
        # Too large to index: stored and downloadable, ingestion says why.
        record = await wait_file_ready(server, user, chat_id, data["files"][0]["file_id"],
                                       want="failed")
        assert "too large to index" in record["error"]
    finally:
        await server.close()
