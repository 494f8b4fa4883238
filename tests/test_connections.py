"""Connection lifecycle: token expiry with auth_refresh, and slow clients being dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from namespaces import connections
from tests.client import start_parlour


async def test_session_expires_unless_refreshed(make_settings: Any) -> None:
    server = await start_parlour(make_settings(auth__access_ttl_seconds=3))
    try:
        user = await server.signup()
        stays, goes = await server.socket(user), await server.socket(user)
        await asyncio.sleep(1.5)
        status, fresh = await server.request(
            "POST", "/api/v1/auth/login", json={"email": user.email, "password": "correct horse 1"}
        )
        data = await stays.ok("auth_refresh", {"token": fresh["access_token"]})
        assert data["expires_at"] > 0
        other = await server.signup()
        ack = await stays.call("auth_refresh", {"token": other.token})
        assert ack["error"]["code"] == "unauthorized"

        await goes.wait("session_expired", timeout=5)
        await asyncio.sleep(0.5)
        assert not goes.sio.connected and stays.sio.connected
        assert stays.named("session_expired") == []
        await stays.wait("session_expired", timeout=6)
    finally:
        await server.close()


@pytest.mark.parametrize("per_sweep", [None, 2])
async def test_client_that_stops_reading_is_disconnected(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, per_sweep: int | None,
) -> None:
    """Dropped whether its queue is read at the next sweep or a few sweeps later (the
    sweep reads SWEEP_QUEUES send queues a second, in turn: here 2 of 12)."""
    if per_sweep is not None:
        monkeypatch.setattr(connections, "SWEEP_QUEUES", per_sweep)
    server = await start_parlour(make_settings(
        server__max_socket_queue=8, limits__messages_per_minute=1000, llm__default_model=None,
    ))
    try:
        owner, lagger = await server.signup(), await server.signup()
        o = await server.socket(owner)
        room_id = (await o.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
        await o.ok("invite", {"room_id": room_id, "email": lagger.email})

        # A long-polling client that joins the room and then never polls again.
        base = f"{server.url}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(base) as resp:
                handshake = orjson.loads((await resp.text())[1:])
            url = f"{base}&sid={handshake['sid']}"
            auth = orjson.dumps({"token": lagger.token}).decode()
            async with http.post(url, data=f"40/assistant/realtime,{auth}") as resp:
                assert resp.status == 200
            async with http.get(url) as resp:
                assert "40/assistant/realtime" in await resp.text()
            join = orjson.dumps(["join_room", {"room_id": room_id}]).decode()
            async with http.post(url, data=f"42/assistant/realtime,1{join}") as resp:
                assert resp.status == 200
            await o.wait("user_joined")
            for _ in range(10 if per_sweep else 0):  # sockets that read what they get,
                await server.socket(await server.signup())  # after the lagger's
            for i in range(30):
                await o.ok("send_message", {"room_id": room_id, "content": f"flood {i}"})
            (left,) = await o.wait("user_left", timeout=10)
            assert left["user"]["user_id"] == lagger.user_id
    finally:
        await server.close()
