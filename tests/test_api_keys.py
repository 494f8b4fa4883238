"""Personal API keys: created once, shown once, used on REST, `/v1` and Socket.IO, revoked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
import socketio

from tests.client import Parlour, User, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.servers import wait_for

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def server(make_settings: Any) -> AsyncIterator[Parlour]:
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed", auth__allowed_domains=["example.com"]),
        providers={"scripted": ScriptedProvider()},
    )
    yield server
    await server.close()


async def new_key(server: Parlour, user: User, **fields: Any) -> dict[str, Any]:
    status, data = await server.request("POST", "/api/v1/keys", user,
                                        json={"name": "laptop", **fields})
    assert status == 201, data
    return dict(data)


def as_key(user: User, key: str) -> User:
    """The same user, calling with a personal API key instead of the access token."""
    return User(user.user_id, user.email, user.name, key, "")


def gateway(server: Parlour, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


async def test_a_key_works_everywhere_as_its_owner_until_revoked(server: Parlour) -> None:
    user = await server.signup()
    created = await new_key(server, user, expires_in_days=30)
    key = created["key"]
    assert key.startswith("plr_") and len(key) == 47 and created["prefix"] == key[:12]
    assert set(created) == {"id", "name", "prefix", "key", "created_at", "expires_at"}
    assert created["expires_at"] > created["created_at"]
    stored = await server.services.mongo.collection("api_keys").find_one({"_id": created["id"]})
    assert stored is not None and key not in str(stored)  # only its hash is kept

    status, listed = await server.request("GET", "/api/v1/keys", user)
    assert status == 200 and [k["id"] for k in listed["keys"]] == [created["id"]]
    assert set(listed["keys"][0]) == {"id", "name", "prefix", "created_at", "last_used_at",
                                      "expires_at", "usage"}
    assert listed["keys"][0]["usage"]["requests"] == 0
    assert listed["keys"][0]["last_used_at"] is None

    keyed = as_key(user, key)
    status, me = await server.request("GET", "/api/v1/auth/me", keyed)
    assert status == 200 and me["user"]["user_id"] == user.user_id
    async with gateway(server, key) as client:
        done = await client.chat.completions.create(model="scripted:fixed", messages=HI)
        assert done.choices[0].message.content
    record = await server.services.mongo.collection("usage").find_one({"user_id": user.user_id})
    assert record is not None and record["key_id"] == created["id"]
    sock = await server.socket(None, token=key)
    room = await sock.ok("create_room", {"title": "made with a key"})
    assert room["room"]["owner_id"] == user.user_id
    other = await server.socket(user)  # the same user with the access token

    status, session = await server.request("GET", "/api/v1/session_id", keyed)
    ws_url = f"{server.url}/api/v1/ws/chat?session_id={session['session_id']}&token={key}"
    async with server.http.ws_connect(ws_url) as ws:  # the plain WebSocket takes keys too
        await ws.send_json({"type": "message", "content": "hi"})
        while (frame := await ws.receive_json(timeout=10))["type"] == "delta":
            pass
        assert frame["type"] == "done", frame

    # A key cannot mint or revoke keys (a leaked one must not outlive its revocation).
    status, data = await server.request("POST", "/api/v1/keys", keyed, json={"name": "x"})
    assert status == 403 and data["error"]["code"] == "forbidden"

    assert server.services.api_keys is not None
    await server.services.api_keys.flush()  # last use is written in batches
    status, listed = await server.request("GET", "/api/v1/keys", user)
    assert listed["keys"][0]["last_used_at"] is not None
    assert listed["keys"][0]["usage"]["requests"] == 1  # the gateway call made with it
    assert listed["keys"][0]["usage"]["output_tokens"] == 12

    status, _ = await server.request("DELETE", f"/api/v1/keys/{created['id']}", user)
    assert status == 204
    # The socket opened with the key ends (session_expired), the other one stays.
    await sock.wait("session_expired", timeout=5)
    await wait_for(lambda: not sock.sio.connected)
    assert other.sio.connected and not other.named("session_expired")
    status, data = await server.request("GET", "/api/v1/auth/me", keyed)
    assert status == 401 and data["error"]["code"] == "unauthorized"
    async with gateway(server, key) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model="scripted:fixed", messages=HI)
    assert refused.value.code == "invalid_api_key"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.socket(None, token=key)
    status, listed = await server.request("GET", "/api/v1/keys", user)
    assert listed["keys"] == []
    status, data = await server.request("DELETE", f"/api/v1/keys/{created['id']}", user)
    assert status == 404


async def test_keys_are_private_bounded_and_validated(server: Parlour) -> None:
    alice, bob = await server.signup(), await server.signup()
    key = await new_key(server, alice)
    status, _ = await server.request("DELETE", f"/api/v1/keys/{key['id']}", bob)
    assert status == 404
    status, listed = await server.request("GET", "/api/v1/keys", bob)
    assert listed["keys"] == []
    for bad in ({"name": ""}, {"name": "x" * 101}, {"name": "x", "expires_in_days": 0}, {}):
        status, data = await server.request("POST", "/api/v1/keys", alice, json=bad)
        assert status == 422 and data["error"]["code"] == "invalid_payload", bad
    server.http.cookie_jar.clear()  # sign-up set the session cookie
    status, _ = await server.request("GET", "/api/v1/keys")
    assert status == 401


async def test_expired_malformed_and_unknown_keys_are_refused(server: Parlour) -> None:
    user = await server.signup()
    created = await new_key(server, user, expires_in_days=1)
    past = datetime.now(UTC) - timedelta(minutes=1)
    await server.services.mongo.collection("api_keys").update_one(
        {"_id": created["id"]}, {"$set": {"expires_at": past}})
    for key in (created["key"], "plr_short", "plr_" + "A" * 43):
        status, data = await server.request("GET", "/api/v1/chat", as_key(user, key))
        assert status == 401 and data["error"]["code"] == "unauthorized", key
        async with gateway(server, key) as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
    status, data = await server.request("GET", "/api/v1/chat", as_key(user, created["key"]))
    assert "expired" in data["error"]["message"]


async def test_a_key_outlives_its_owners_log_out(server: Parlour) -> None:
    user = await server.signup()
    key = (await new_key(server, user))["key"]
    status, _ = await server.request("POST", "/api/v1/auth/logout", user,
                                     json={"refresh_token": user.refresh_token})
    assert status == 204
    status, _ = await server.request("GET", "/api/v1/auth/me", user)
    assert status == 401  # the session ended
    server.http.cookie_jar.clear()
    status, me = await server.request("GET", "/api/v1/auth/me", as_key(user, key))
    assert status == 200 and me["user"]["user_id"] == user.user_id  # the key did not
    sock = await server.socket(None, token=key)
    assert (await sock.ok("create_room", {"title": "after log-out"}))["room"]["room_id"]


async def test_owner_off_the_whitelist_is_forbidden(server: Parlour) -> None:
    user = await server.signup()
    key = (await new_key(server, user))["key"]
    status, _ = await server.request("GET", "/api/v1/chat", as_key(user, key))
    assert status == 200
    # The operator narrows auth.allowed_domains / allowed_emails: the key's owner is out.
    server.services.settings.auth.allowed_domains.clear()
    server.services.settings.auth.allowed_emails.append("someone-else@example.com")
    status, data = await server.request("GET", "/api/v1/chat", as_key(user, key))
    assert status == 403 and data["error"]["code"] == "forbidden"
    async with gateway(server, key) as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="scripted:fixed", messages=HI)


async def test_revoking_on_one_node_refuses_on_the_other_at_once(
    make_settings: Any, redis_url: str
) -> None:
    settings = make_settings(redis__url=redis_url, llm__default_model="scripted:fixed")
    one = await start_parlour(settings, providers={"scripted": ScriptedProvider()})
    two = await start_parlour(settings, providers={"scripted": ScriptedProvider()})
    try:
        user = await one.signup()
        created = await new_key(one, user)
        keyed = as_key(user, created["key"])
        status, _ = await two.request("GET", "/api/v1/chat", keyed)  # now cached on two
        assert status == 200
        status, _ = await one.request("DELETE", f"/api/v1/keys/{created['id']}", user)
        assert status == 204
        refused: list[int] = []

        async def probe() -> None:
            while True:
                status, _ = await two.request("GET", "/api/v1/chat", keyed)
                if status == 401:
                    refused.append(status)
                    return
                await asyncio.sleep(0.02)

        # Well under the cache's lifetime: the control bus carried the revocation.
        await asyncio.wait_for(probe(), timeout=1.0)
        async with gateway(two, created["key"]) as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
    finally:
        await one.close()
        await two.close()

