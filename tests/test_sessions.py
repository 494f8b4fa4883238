"""Sessions end when the server says so: log-out, deleted accounts, whitelist, lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import socketio

from app.cli_users import CliError, delete
from tests.client import Parlour, SocketClient, User, start_parlour

ME = "/api/v1/auth/me"
REFUSED = [{"message": "unauthorized", "data": {"code": "unauthorized"}}]


async def refused_socket(server: Parlour, token: str) -> Any:
    """The connect_error data of a socket connecting with `token`."""
    client = SocketClient("/assistant/realtime")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.connect(client, None, token=token)
    return client.named("connect_error")


async def ws_frames_until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[Any]:
    """Every text frame the server sends until it closes the socket."""
    frames = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return frames
        frames.append(orjson.loads(msg.data))


async def session_room(server: Parlour, user: User) -> str:
    status, data = await server.request("POST", "/api/v1/chat", user, json={"title": "ws"})
    assert status == 201, data
    return str(data["chat_id"])


async def test_logout_ends_the_access_token_on_rest_sockets_and_websocket(
    parlour: Parlour,
) -> None:
    user = await parlour.signup()
    room_id = await session_room(parlour, user)
    sock = await parlour.socket(user)
    ws_url = f"{parlour.url}/api/v1/ws/chat?session_id={room_id}&token={user.token}"
    async with aiohttp.ClientSession() as fresh, fresh.ws_connect(ws_url) as ws:
        status, _ = await parlour.request(
            "POST", "/api/v1/auth/logout", json={"refresh_token": user.refresh_token}
        )
        assert status == 204
        # The access token is refused at once, wherever it is presented.
        status, data = await parlour.request("GET", ME, user)
        assert status == 401 and data["error"]["code"] == "unauthorized"
        status, _ = await parlour.request("POST", "/api/v1/chat", user, json={"title": "x"})
        assert status == 401
        assert await refused_socket(parlour, user.token) == REFUSED
        # Connections opened before the log-out end too.
        await sock.wait("session_expired", timeout=5)
        frames = await ws_frames_until_closed(ws)
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "unauthorized"
        assert ws.close_code == 4001
    # Logging in again works.
    status, data = await parlour.request(
        "POST", "/api/v1/auth/login", json={"email": user.email, "password": "correct horse 1"}
    )
    assert status == 200
    status, _ = await parlour.request(
        "GET", ME, headers={"Authorization": f"Bearer {data['access_token']}"}
    )
    assert status == 200


async def test_logout_with_the_access_token_only_ends_every_device(parlour: Parlour) -> None:
    user = await parlour.signup()
    status, other_device = await parlour.request(
        "POST", "/api/v1/auth/login", json={"email": user.email, "password": "correct horse 1"}
    )
    assert status == 200
    bearer = {"Authorization": f"Bearer {user.token}"}
    async with aiohttp.ClientSession() as fresh, fresh.post(  # a client without cookies
        parlour.url + "/api/v1/auth/logout", headers=bearer
    ) as resp:
        assert resp.status == 204
    status, _ = await parlour.request(
        "GET", ME, headers={"Authorization": f"Bearer {other_device['access_token']}"}
    )
    assert status == 401
    status, _ = await parlour.request(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": other_device["refresh_token"]}
    )
    assert status == 401


async def test_deleted_account_tokens_are_refused(parlour: Parlour) -> None:
    user = await parlour.signup()
    sock = await parlour.socket(user)
    status, _ = await parlour.request("GET", ME, user)  # cached as valid on this node
    assert status == 200
    assert await parlour.services.auth.delete_account(user.user_id)
    status, data = await parlour.request("POST", "/api/v1/chat", user, json={"title": "x"})
    assert status == 401 and data["error"]["code"] == "unauthorized"
    assert await refused_socket(parlour, user.token) == REFUSED
    await sock.wait("session_expired", timeout=5)
    status, _ = await parlour.request(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert status == 401


async def test_email_removed_from_the_whitelist_is_refused(make_settings: Any) -> None:
    first = await start_parlour(make_settings(auth__allowed_domains=["ok.org"]))
    try:
        status, data = await first.request(
            "POST", "/api/v1/auth/signup",
            json={"email": "a@ok.org", "password": "long enough", "name": "A"},
        )
        assert status == 201
    finally:
        await first.close()
    # The same database, restarted with a whitelist that no longer has the domain.
    again = await start_parlour(make_settings(auth__allowed_domains=["else.org"]))
    try:
        bearer = {"Authorization": f"Bearer {data['access_token']}"}
        status, _ = await again.request("GET", ME, headers=bearer)
        assert status == 401
        status, _ = await again.request(
            "POST", "/api/v1/auth/refresh", json={"refresh_token": data["refresh_token"]}
        )
        assert status == 403
        assert await refused_socket(again, data["access_token"]) == REFUSED
    finally:
        await again.close()


async def test_sessions_have_a_maximum_lifetime(make_settings: Any) -> None:
    server = await start_parlour(make_settings(auth__max_token_lifetime_seconds=2))
    try:
        user = await server.signup()
        status, data = await server.request(
            "POST", "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
        )
        assert status == 200 and data["expires_in"] <= 2
        await asyncio.sleep(2.5)
        # Refreshing does not extend a session past its log-in's lifetime.
        status, body = await server.request(
            "POST", "/api/v1/auth/refresh", json={"refresh_token": data["refresh_token"]}
        )
        assert status == 401 and body["error"]["code"] == "unauthorized"
    finally:
        await server.close()


async def test_plain_websocket_ends_when_its_token_expires(make_settings: Any) -> None:
    server = await start_parlour(make_settings(auth__access_ttl_seconds=2))
    try:
        user = await server.signup()
        room_id = await session_room(server, user)
        url = f"{server.url}/api/v1/ws/chat?session_id={room_id}&token={user.token}"
        async with server.http.ws_connect(url) as ws:
            frames = await ws_frames_until_closed(ws)
        assert frames == [{"type": "error", "code": "unauthorized", "message": "token expired"}]
        assert ws.close_code == 4001
    finally:
        await server.close()


@pytest.fixture
async def nodes(make_settings: Any, redis_url: str) -> AsyncIterator[tuple[Parlour, Parlour]]:
    settings = make_settings(redis__url=redis_url, llm__default_model=None)
    one, two = await start_parlour(settings), await start_parlour(settings)
    yield one, two
    await one.close()
    await two.close()


async def test_logout_on_one_node_ends_the_session_on_the_other(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    user = await one.signup()
    status, _ = await two.request("GET", ME, user)  # node two caches the version
    assert status == 200
    sock = await two.socket(user)
    status, _ = await one.request(
        "POST", "/api/v1/auth/logout", json={"refresh_token": user.refresh_token}
    )
    assert status == 204
    await sock.wait("session_expired", timeout=5)
    status, _ = await two.request("GET", ME, user)
    assert status == 401
    assert await refused_socket(two, user.token) == REFUSED


async def test_invitations_are_limited_per_hour_whether_or_not_emails_exist(
    make_settings: Any,
) -> None:
    server = await start_parlour(make_settings(limits__invites_per_hour=3))
    try:
        owner, known = await server.signup(), await server.signup()
        sock = await server.socket(owner)
        room_id = (await sock.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
        for email in ("nobody1@example.com", known.email, "nobody2@example.com"):
            await sock.ok("invite", {"room_id": room_id, "email": email})
        for email in ("nobody3@example.com", "someone@example.com"):
            ack = await sock.call("invite", {"room_id": room_id, "email": email})
            assert ack["error"]["code"] == "rate_limited"
    finally:
        await server.close()


async def test_changing_the_password_ends_every_other_session(parlour: Parlour) -> None:
    user = await parlour.signup()
    sock = await parlour.socket(user)
    path = "/api/v1/auth/password"
    status, data = await parlour.request(
        "POST", path, user, json={"current_password": "wrong guess", "new_password": "new one 123"}
    )
    assert status == 401 and data["error"]["code"] == "unauthorized"
    status, data = await parlour.request(
        "POST", path, user, json={"current_password": "correct horse 1", "new_password": "short"}
    )
    assert status == 422 and "password" in data["error"]["message"]
    status, fresh = await parlour.request(
        "POST", path, user,
        json={"current_password": "correct horse 1", "new_password": "new one 123"},
    )
    assert status == 200
    # The old tokens are refused everywhere; the new session works.
    status, _ = await parlour.request("GET", ME, user)
    assert status == 401
    status, _ = await parlour.request(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert status == 401
    await sock.wait("session_expired", timeout=5)
    status, _ = await parlour.request(
        "GET", ME, headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert status == 200
    for password, expected in (("correct horse 1", 401), ("new one 123", 200)):
        status, _ = await parlour.request(
            "POST", "/api/v1/auth/login", json={"email": user.email, "password": password}
        )
        assert status == expected


async def test_deleting_an_account_from_the_command_line_ends_its_sessions(
    make_settings: Any, redis_url: str
) -> None:
    settings = make_settings(redis__url=redis_url, llm__default_model=None)
    server = await start_parlour(settings)
    try:
        user = await server.signup()
        sock = await server.socket(user)
        status, _ = await server.request("GET", ME, user)  # the node caches the version
        assert status == 200
        line = await delete(settings, user.email)
        assert line.startswith(f"deleted {user.email}")
        # The running node heard it through Redis: refused at once, not in 30 s.
        status, _ = await server.request("GET", ME, user)
        assert status == 401
        await sock.wait("session_expired", timeout=5)
        with pytest.raises(CliError, match="no account"):
            await delete(settings, user.email)
        # The email is free again: a new account, a new id.
        status, data = await server.request(
            "POST", "/api/v1/auth/signup",
            json={"email": user.email, "password": "correct horse 1", "name": "Again"},
        )
        assert status == 201 and data["user"]["user_id"] != user.user_id
    finally:
        await server.close()
