"""Each limit crossed once, on every door: messages per minute, members, counters' memory.

(Concurrent replies and daily tokens on all six paths: test_admission.py; upload size
and type: test_files.py.)
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from storage.ratelimit import MemoryRateLimiter
from tests.client import Parlour, User, start_parlour
from tests.scripted_provider import ScriptedProvider

PER_MINUTE = 3
# Fixed one-minute windows: 2 * limit + 1 tries put limit + 1 in one window.
TRIES = 2 * PER_MINUTE + 1


async def ws_send(server: Parlour, user: User, room_id: str, text: str) -> dict[str, Any]:
    url = f"{server.url}/api/v1/ws/chat?session_id={room_id}&token={user.token}"
    async with server.http.ws_connect(url) as ws:
        await ws.send_str(orjson.dumps({"type": "message", "content": text}).decode())
        while True:
            frame: dict[str, Any] = orjson.loads((await ws.receive(timeout=15)).data)
            if frame["type"] in ("done", "error"):
                return frame


async def test_messages_per_minute_hold_on_every_path(make_settings: Any) -> None:
    server = await start_parlour(make_settings(
        limits__messages_per_minute=PER_MINUTE, llm__default_model="scripted:fixed",
    ), providers={"scripted": ScriptedProvider(deltas=["ok "])})
    try:
        outcomes: dict[str, list[str]] = {}
        # Socket.IO
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
        codes = []
        for i in range(TRIES):
            ack = await s.call("send_message", {"room_id": room_id, "content": f"m{i}"})
            codes.append("ok" if ack["ok"] else ack["error"]["code"])
        outcomes["socketio"] = codes
        # REST (a question in a chat stores the message)
        user = await server.signup()
        status, chat = await server.request("POST", "/api/v1/chat", user, json={})
        codes = []
        for i in range(TRIES):
            status, body = await server.request(
                "POST", "/api/v1/run", user, json={"text": f"q{i}", "chat_id": chat["chat_id"]})
            codes.append("ok" if status == 200 else body["error"]["code"])
            if status == 429:
                assert "too many messages" in body["error"]["message"]
        outcomes["rest"] = codes
        # Plain WebSocket
        user = await server.signup()
        status, chat = await server.request("POST", "/api/v1/chat", user, json={})
        codes = []
        for i in range(TRIES):
            frame = await ws_send(server, user, chat["chat_id"], f"w{i}")
            codes.append("ok" if frame["type"] == "done" else frame["code"])
        outcomes["websocket"] = codes
        for door, codes in outcomes.items():
            assert codes[0] == "ok" and "rate_limited" in codes, (door, codes)
            assert set(codes) <= {"ok", "rate_limited"}, (door, codes)
    finally:
        await server.close()


async def test_the_member_limit_holds_for_invites_and_public_joins(make_settings: Any) -> None:
    server = await start_parlour(make_settings(limits__max_members=2))
    try:
        owner, second, third = (await server.signup(), await server.signup(),
                                await server.signup())
        o = await server.socket(owner)
        room_id = (await o.ok("create_room", {"visibility": "public"}))["room"]["room_id"]
        await o.ok("invite", {"room_id": room_id, "email": second.email})
        ack = await o.call("invite", {"room_id": room_id, "email": third.email})
        assert ack["error"]["code"] == "conflict" and "full" in ack["error"]["message"]
        t = await server.socket(third)
        ack = await t.call("join_room", {"room_id": room_id})
        assert ack["error"]["code"] == "conflict" and "full" in ack["error"]["message"]
        status, room = await server.request("GET", f"/api/v1/chat/{room_id}", owner)
        assert len(room["members"]) == 2
    finally:
        await server.close()


async def test_daily_counters_survive_a_flood_of_short_keys() -> None:
    """The in-memory limiter makes room by dropping expired and short-window keys first."""
    limiter = MemoryRateLimiter(max_keys=100)
    assert await limiter.add("tokens:alice", 500, 86_400) == 500
    for i in range(1_000):  # log-in guesses, connects from many addresses...
        await limiter.hit(f"login:{i}", 5, 60)
    assert len(limiter) <= 100
    assert await limiter.count("tokens:alice", 86_400) == 500
    assert await limiter.add("tokens:alice", 1, 86_400) == 501


async def test_parallel_password_guesses_are_counted_before_checking(
    make_settings: Any,
) -> None:
    import asyncio

    server = await start_parlour(make_settings(
        auth__login_max_failures=3, auth__login_window_seconds=86_400))
    try:
        user = await server.signup()

        async def guess(password: str) -> int:
            status, _ = await server.request(
                "POST", "/api/v1/auth/login", json={"email": user.email, "password": password})
            return status

        started = time.monotonic()
        statuses = await asyncio.gather(*(guess(f"wrong {i}") for i in range(12)))
        assert statuses.count(401) <= 3 and statuses.count(429) >= 9, statuses
        # Even the right password waits out the window now.
        assert await guess("correct horse 1") == 429
        assert time.monotonic() - started < 60
    finally:
        await server.close()
