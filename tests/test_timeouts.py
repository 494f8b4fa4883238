"""Slow clients cannot hold the server: header and body deadlines on every request."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.client import Parlour, start_parlour
from tests.servers import free_port, wait_port

PARLOUR = str(Path(sys.executable).parent / "parlour")


async def raw(port: int, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    return reader, writer


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after `within` s)."""
    return await asyncio.wait_for(reader.read(), within)


async def test_a_body_that_stops_arriving_is_answered_408(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server: Parlour = await start_parlour(make_settings(server__body_timeout_seconds=1))
    try:
        reader, writer = await raw(server.port, (
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n{\"email\": "
        ))
        answer = await read_until_closed(reader, 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == "invalid_payload"
        assert "nothing received for 1 s" in body["error"]["message"]
        # The server is fine for everyone else, and logged no error for a slow client.
        status, _ = await server.request("GET", "/internal/health")
        assert status in (200, 503)
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        await server.close()


async def test_an_engineio_poll_that_announces_a_body_and_sends_nothing_ends(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_parlour(make_settings(server__body_timeout_seconds=1))
    try:
        user = await server.signup()
        async with server.http.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling",
            headers={"Authorization": f"Bearer {user.token}"},
        ) as resp:
            sid = orjson.loads((await resp.text())[1:])["sid"]
        reader, writer = await raw(server.port, (
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\nContent-Type: text/plain;charset=UTF-8\r\n"
            "Content-Length: 2000000\r\n\r\n"
        ).encode())
        # Engine.IO answers the failed read itself; the request ends and the connection
        # closes instead of waiting for the 2 MB forever, with no error logged.
        answer = await read_until_closed(reader, 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 ") and b"Connection: close" in answer, answer
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        await server.close()


async def test_slow_headers_are_cut_off(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLOUR_")}
    env.update(PARLOUR_LLM__LOCAL_ENABLED="false", PARLOUR_SERVER__HEADER_TIMEOUT_SECONDS="1")
    proc = subprocess.Popen(
        [PARLOUR, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_port, port, 90, proc)
        reader, writer = await raw(port, b"GET /internal/health HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:  # slowloris: a header line now and then, never the end
            for i in range(40):
                writer.write(f"X-Slow-{i}: a\r\n".encode())
                await writer.drain()
                await asyncio.sleep(0.25)

        dripping = asyncio.create_task(trickle())
        try:
            await read_until_closed(reader, 5)  # closed well before the trickle ends
            assert not dripping.done()
        finally:
            dripping.cancel()
            await asyncio.gather(dripping, return_exceptions=True)
            writer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
