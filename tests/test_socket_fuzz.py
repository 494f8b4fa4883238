"""10,000 malformed Socket.IO events and garbage Engine.IO frames against a live server."""

from __future__ import annotations

import random
import re
from typing import Any

import orjson
import pytest

from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider

# What an ack may carry: a stable code of SPEC §3, never `internal`.
STABLE = {"invalid_payload", "unauthorized", "forbidden", "not_found", "conflict",
          "rate_limited", "payload_too_large"}
EVENTS = ["create_room", "join_room", "leave_room", "send_message", "typing", "update_room",
          "invite", "remove_member", "update_member", "stop_generation", "regenerate",
          "auth_refresh", "voice_start", "voice_chunk", "voice_stop", "voice_cancel"]
FIELDS = ["audio", "room_id", "content", "message_id", "user_id", "email", "role", "is_typing",
          "since_seq", "title", "model", "assistant_mode", "visibility", "token", "file_ids",
          "client_msg_id", "reply_to", "tools", "system_prompt", "room_type"]


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


def junk(rand: random.Random, room_id: str) -> Any:
    """A value of a random wrong shape."""
    choice = rand.randrange(14)
    if choice == 0:
        return None
    if choice == 1:
        return rand.choice([True, False, 0, -1, 2**63, 1.5e308, -0.0])
    if choice == 2:
        return "x" * rand.choice([0, 1, 1000, 200_000])
    if choice == 3:
        return nested(rand.choice([10, 100, 200]))  # deeper: raw frames below
    if choice == 4:
        return bytes(rand.randrange(256) for _ in range(rand.randrange(64)))
    if choice == 5:
        return [junk(rand, room_id) for _ in range(3)]
    if choice == 6:
        return room_id
    if choice == 7:
        return "\u0000\ud7ff\ufffe" + "é" * 10
    if choice == 8:
        return {"$gt": ""}
    if choice == 9:
        return rand.randrange(-10, 10)
    return "".join(rand.choice("abc{}[]\"\\/$.") for _ in range(rand.randrange(20)))


def payload(rand: random.Random, room_id: str) -> Any:
    kind = rand.randrange(6)
    if kind == 0:
        return junk(rand, room_id)  # not an object at all
    fields = rand.sample(FIELDS, rand.randrange(1, 6))
    body = {f: junk(rand, room_id) for f in fields}
    if kind == 1:
        body["room_id"] = room_id  # a real room, wrong everything else
    if kind == 2:
        body[rand.choice(["x" * 500, "", "__proto__"])] = 1
    return body


@pytest.fixture
async def server(make_settings: Any) -> Any:
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed", limits__messages_per_minute=100_000),
        providers={"scripted": ScriptedProvider(deltas=["ok "])},
    )
    yield server
    await server.close()


async def metrics_size(server: Parlour) -> int:
    async with server.http.get(f"{server.url}/internal/metrics") as resp:
        return len(await resp.read())


@pytest.mark.slow
async def test_ten_thousand_malformed_events_get_stable_answers(server: Parlour) -> None:
    rand = random.Random(16)
    user = await server.signup()
    s = await server.socket(user)
    room_id = (await s.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    codes: dict[str, int] = {}
    sent = 0
    size_after_warmup = 0
    while sent < 10_000:
        if sent == 500:
            size_after_warmup = await metrics_size(server)
        event = rand.choice(EVENTS) if rand.random() < 0.85 else f"junk{rand.randrange(10**9)}"
        ack = await s.call(event, payload(rand, room_id), timeout=30)
        sent += 1
        assert isinstance(ack, dict) and set(ack) in ({"ok", "data"}, {"ok", "error"}), ack
        if ack["ok"]:
            codes["ok"] = codes.get("ok", 0) + 1
            continue
        code = ack["error"]["code"]
        assert code in STABLE, (event, ack)
        assert isinstance(ack["error"]["message"], str)
        codes[code] = codes.get(code, 0) + 1
    assert codes.get("invalid_payload", 0) > 5000, codes
    # The same socket still works; the metrics did not grow with the junk.
    await s.ok("send_message", {"room_id": room_id, "content": "still here"})
    # Series only for known names and stable codes: bounded, whatever the junk was.
    async with server.http.get(f"{server.url}/internal/metrics") as resp:
        text = await resp.text()
    labels = set(re.findall(r'parlour_events_total\{event="([^"]*)"', text))
    assert labels <= set(EVENTS) | {"unknown"}, labels - set(EVENTS)
    assert await metrics_size(server) - size_after_warmup < 8000
    async with server.http.get(f"{server.url}/internal/health") as resp:
        assert resp.status == 200


async def raw_session(server: Parlour, user_token: str) -> Any:
    """A raw Engine.IO WebSocket, connected to /assistant/realtime."""
    ws = await server.http.ws_connect(
        f"{server.url}/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0{")
    auth = orjson.dumps({"token": user_token}).decode()
    await ws.send_str(f"40/assistant/realtime,{auth}")
    connected = await ws.receive_str(timeout=5)
    assert connected.startswith("40/assistant/realtime"), connected
    return ws


GARBAGE_TEXT = [
    "", "4", "9", "42", "4x", "40", "41", "43/assistant/realtime,1[]", "42/assistant/realtime,",
    "42/assistant/realtime,[", "42/assistant/realtime,1{}", "42/assistant/realtime,1[1,2]",
    '42/assistant/realtime,1[null]', '42/assistant/realtime,1[{"a":1}]',
    '42/nowhere,1["send_message",{}]', '451-/assistant/realtime,1["x",{"_placeholder":true,"num":0}]',
    '451-/assistant/realtime,2["x",{"_placeholder":true,"num":7}]', "42" + "[" * 5000,
    '42/assistant/realtime,99999999999999999999999["typing",{}]', "2probe", "3", "5", "6",
    "\u0000\u0001", "4" + "x" * 100_000,
]


async def test_garbage_engineio_frames_leave_the_server_up(server: Parlour) -> None:
    user = await server.signup()
    for frame in GARBAGE_TEXT:
        ws = await raw_session(server, user.token)
        await ws.send_str(frame)
        await ws.send_bytes(b"\x00\x01garbage")
        await ws.close()
    # Binary where JSON is expected, on a Socket.IO client.
    s = await server.socket(user)
    ack = await s.call("send_message", b"\x00" * 100)
    assert ack["error"]["code"] == "invalid_payload"
    ack = await s.call("send_message", {"room_id": b"\x01\x02", "content": b"x"})
    assert ack["error"]["code"] in ("invalid_payload", "not_found")
    # Garbage over long-polling too.
    async with server.http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as resp:
        sid = orjson.loads((await resp.text())[1:])["sid"]
    for body in ("garbage", "40/assistant/realtime,{", "\x1e\x1e", "4" * 10_000):
        async with server.http.post(
            f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=body
        ) as resp:
            assert resp.status < 500
    async with server.http.get(f"{server.url}/socket.io/?EIO=9&transport=carrier") as resp:
        assert resp.status == 400
    # Still up and answering, on a fresh connection.
    fresh = await server.socket(user)
    await fresh.ok("create_room", {})
    async with server.http.get(f"{server.url}/internal/health") as resp:
        assert resp.status == 200
