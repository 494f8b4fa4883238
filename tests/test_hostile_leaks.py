"""What the server gives away: versions, exception text, forged log lines, operator routes."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

from app.health import CheckFailed, HealthService
from app.logs import log_handler
from tests.client import Parlour, start_parlour
from tests.test_files import new_chat, upload

TOKEN = "internal-token-0123456789abcdef"


async def test_server_header_names_no_versions(parlour: Parlour) -> None:
    for path in ("/internal/health", "/api/v1/nothing-here", "/socket.io/?EIO=4&transport=polling"):
        async with parlour.http.get(parlour.url + path) as resp:
            assert resp.headers["Server"] == "Parlour", (path, resp.headers["Server"])
    # A request aiohttp refuses before routing (a malformed header line).
    reader, writer = await asyncio.open_connection("127.0.0.1", parlour.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        await writer.drain()
        head = (await reader.read(400)).decode(errors="replace")
    finally:
        writer.close()
    assert head.startswith("HTTP/1.0 400") and "Server: Parlour\r\n" in head, head


async def test_health_shows_no_exception_text() -> None:
    async def leaky() -> str:
        raise RuntimeError("mongodb://admin:hunter2@10.0.0.5:27017 refused")

    async def explained() -> str:
        raise CheckFailed("no LLM provider is configured")

    health = HealthService("1.0", "node-a")
    health.register("mongo", leaky)
    health.register("llm", explained)
    report = await health.report()
    assert report["status"] == "down"
    detail = report["checks"]["mongo"]["detail"]
    assert "hunter2" not in detail and "10.0.0.5" not in detail
    assert detail == "failed (RuntimeError); see the server log"
    assert report["checks"]["llm"]["detail"] == "no LLM provider is configured"


async def test_internal_routes_behind_the_internal_token(make_settings: Any) -> None:
    server = await start_parlour(make_settings(server__internal_token=TOKEN))
    try:
        status, body = await server.request("GET", "/internal/health")
        assert status == 200 and list(body) == ["status"]  # enough for a load balancer
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = await server.request("GET", "/internal/health", headers=auth)
        assert status == 200 and "mongo" in body["checks"]
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, body = await server.request("GET", "/internal/metrics", headers=headers)
            assert status == 401 and body["error"]["code"] == "unauthorized"
            assert "server.internal_token" in body["error"]["message"]
        async with server.http.get(server.url + "/internal/metrics", headers=auth) as resp:
            assert resp.status == 200
            assert "parlour_extractions_running" in await resp.text()
    finally:
        await server.close()


async def test_text_logs_escape_control_characters_from_urls(parlour: Parlour) -> None:
    buffer = io.StringIO()
    handler = log_handler("text", production=False, stream=buffer)
    logger = logging.getLogger("parlour.http")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        forged = "/api/v1/x%0a2026-01-01 00:00:00,000 INFO parlour.http: GET /admin status=200"
        async with parlour.http.get(parlour.url + forged) as resp:
            assert resp.status == 404
    finally:
        handler.flush()  # lines on the loop are written in batches
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [line for line in buffer.getvalue().splitlines() if "/api/v1/x" in line]
    assert len(lines) == 1, buffer.getvalue()
    assert "/api/v1/x\\n2026-01-01" in lines[0]
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in
                   buffer.getvalue().splitlines())


async def test_only_the_uploader_or_the_owner_deletes_a_room_file(parlour: Parlour) -> None:
    owner, alice, bob = (await parlour.signup(), await parlour.signup(),
                         await parlour.signup())
    chat_id = await new_chat(parlour, owner)
    s = await parlour.socket(owner)
    for member in (alice, bob):
        await s.ok("invite", {"room_id": chat_id, "email": member.email, "role": "member"})
    ids = {}
    for who, name in ((owner, "owner.txt"), (alice, "alice.txt"), (bob, "bob.txt")):
        status, data = await upload(parlour, who, chat_id, (name, b"notes of " + name.encode(), None))
        assert status == 201, data
        ids[name] = data["files"][0]["file_id"]
    base = f"/api/v1/chat/{chat_id}/files"
    # Bob cannot delete the owner's file or Alice's.
    for name in ("owner.txt", "alice.txt"):
        status, body = await parlour.request("DELETE", f"{base}/{ids[name]}", bob)
        assert status == 403 and body["error"]["code"] == "forbidden", body
        assert (await parlour.request("GET", f"{base}/{ids[name]}", owner))[0] == 200
    # Bob deletes his own; the owner deletes anyone's.
    assert (await parlour.request("DELETE", f"{base}/{ids['bob.txt']}", bob))[0] == 204
    assert (await parlour.request("DELETE", f"{base}/{ids['alice.txt']}", owner))[0] == 204
    _, listed = await parlour.request("GET", base, alice)
    assert [f["filename"] for f in listed["files"]] == ["owner.txt"]
