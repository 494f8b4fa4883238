"""Bounded resources: metric labels, sockets per user, connects per address, rooms per socket."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from tests.client import Parlour, SocketClient, start_parlour


async def metrics_size(server: Parlour) -> int:
    async with server.http.get(f"{server.url}/internal/metrics") as resp:
        return len(await resp.read())


async def metrics_text(server: Parlour) -> str:
    async with server.http.get(f"{server.url}/internal/metrics") as resp:
        return await resp.text()


async def test_junk_event_names_do_not_grow_the_metrics(parlour: Parlour) -> None:
    user = await parlour.signup()
    s = await parlour.socket(user)
    ack = await s.call("junk-0", {})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"
    await s.ok("create_room", {})
    await metrics_size(parlour)
    before = await metrics_size(parlour)
    for i in range(1, 2001):
        ack = await s.call(f"junk-{i}-" + "x" * (i % 50), {"n": i})
        assert ack["error"]["code"] == "invalid_payload"
    after = await metrics_size(parlour)
    # Only the counters' digits change: one `unknown` series holds all 2,001.
    assert after - before < 200, (before, after)
    text = await metrics_text(parlour)
    assert 'parlour_events_total{event="unknown",outcome="invalid_payload"} 2001.0' in text
    assert "junk" not in text
    # The error names the event, shortened.
    ack = await s.call("y" * 10_000, {})
    assert len(ack["error"]["message"]) < 200


# Methods aiohttp's parser accepts (it refuses made-up ones before any handler runs).
ODD_METHODS = ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PURGE",
               "SEARCH", "REPORT", "LINK", "UNLINK", "MKCALENDAR", "CHECKOUT", "MERGE"]


async def test_unusual_http_methods_share_one_label(parlour: Parlour) -> None:
    status, _ = await parlour.request("TRACE", "/api/v1/model")
    await metrics_size(parlour)  # its own GET 200 series exists from here on
    before = await metrics_size(parlour)
    for method in ODD_METHODS:
        status, _ = await parlour.request(method, "/api/v1/model")
        assert status in (404, 405)
    after = await metrics_size(parlour)
    assert after - before < 100, (before, after)
    text = await metrics_text(parlour)
    assert not any(f'method="{m}"' in text for m in ODD_METHODS)
    assert 'method="other"' in text


async def hang_up(sio: socketio.AsyncClient) -> None:
    """Close what a refused connect leaves open (its Engine.IO session and HTTP client)."""
    await sio.eio.disconnect(abort=True)
    if sio.eio.http is not None and not sio.eio.http.closed:
        await sio.eio.http.close()


async def refused(server: Parlour, token: str) -> Any:
    """Connect and expect a refusal; the connect_error's data."""
    client = SocketClient("/assistant/realtime")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.connect(client, None, token=token)
    await hang_up(client.sio)
    (data,) = client.named("connect_error")
    assert data["message"] == data["data"]["code"]
    return data["data"]


async def test_sockets_per_user_are_capped(make_settings: Any) -> None:
    server = await start_parlour(make_settings(limits__max_sockets_per_user=3))
    try:
        user, other = await server.signup(), await server.signup()
        sockets = [await server.socket(user) for _ in range(3)]
        data = await refused(server, user.token)
        assert data["code"] == "rate_limited"
        assert "limits.max_sockets_per_user" in data["message"]
        # Another user is not affected; closing one socket makes room for a new one.
        await server.socket(other)
        await sockets[0].disconnect()
        again = await server.socket(user)
        await again.ok("create_room", {})
        # The default namespace counts on its own.
        await server.socket(user, namespace="/")
    finally:
        await server.close()


async def test_connects_per_address_are_capped(make_settings: Any) -> None:
    server = await start_parlour(make_settings(limits__connects_per_minute=5))
    try:
        user = await server.signup()
        codes = []
        # Fixed one-minute windows: 11 attempts put at least 6 in one window.
        for _ in range(11):
            client = SocketClient("/assistant/realtime")
            try:
                await server.connect(client, user)
            except socketio.exceptions.ConnectionError:
                await hang_up(client.sio)
                codes.append(client.named("connect_error")[0]["data"]["code"])
                continue
            await client.disconnect()
            codes.append("ok")
        assert "rate_limited" in codes and codes[0] == "ok", codes
        # Bad tokens count too: guessing does not get around it.
        data = await refused(server, "garbage")
        assert data["code"] in ("rate_limited", "unauthorized")
    finally:
        await server.close()


async def test_rooms_per_socket_are_capped(make_settings: Any) -> None:
    server = await start_parlour(make_settings(limits__max_rooms_per_socket=2))
    try:
        user = await server.signup()
        s = await server.socket(user)
        first = (await s.ok("create_room", {}))["room"]["room_id"]
        await s.ok("create_room", {})
        ack = await s.call("create_room", {})
        assert ack["error"]["code"] == "rate_limited"
        assert "limits.max_rooms_per_socket" in ack["error"]["message"]
        await s.ok("join_room", {"room_id": first})  # already joined: fine
        await s.ok("leave_room", {"room_id": first})
        await s.ok("create_room", {})
    finally:
        await server.close()
