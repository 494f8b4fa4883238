"""Every path that can start a reply goes through the one admission gate, and records usage."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.client import Parlour, SocketClient, User, start_parlour
from tests.scripted_provider import ScriptedProvider

SLOW = [f"s{i} " for i in range(100)]


async def ws_ask(server: Parlour, user: User, room_id: str, text: str) -> list[dict[str, Any]]:
    """Frames of one plain-WebSocket question, up to `done` or the first error."""
    url = f"{server.url}/api/v1/ws/chat?session_id={room_id}&token={user.token}"
    frames: list[dict[str, Any]] = []
    async with server.http.ws_connect(url) as ws:
        await ws.send_str(orjson.dumps({"type": "message", "content": text}).decode())
        while True:
            frame = orjson.loads((await ws.receive(timeout=15)).data)
            frames.append(frame)
            if frame["type"] in ("done", "error"):
                return frames


async def user_messages(server: Parlour, user: User, room_id: str) -> list[str]:
    status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    return [m["content"] for m in data["messages"] if m["role"] == "user"]


async def refusals(
    server: Parlour, user: User, s: SocketClient, room_id: str, target: str
) -> dict[str, tuple[int | str, str]]:
    """What each of the six paths answers now: (status or code, message)."""
    found: dict[str, tuple[int | str, str]] = {}
    ack = await s.call("send_message", {"room_id": room_id, "content": "more"})
    found["send_message"] = (ack["error"]["code"], ack["error"]["message"])
    ack = await s.call("regenerate", {"room_id": room_id, "message_id": target})
    found["regenerate"] = (ack["error"]["code"], ack["error"]["message"])
    status, body = await server.request(
        "POST", "/api/v1/run", user, json={"text": "more", "chat_id": room_id})
    found["run_chat"] = (status, body["error"]["code"])
    status, body = await server.request("POST", "/api/v1/run", user, json={"text": "more"})
    found["run"] = (status, body["error"]["code"])
    status, body = await server.request("POST", "/api/v1/aisuite/chat", user, json={
        "model": "scripted:fixed", "messages": [{"role": "user", "content": "more"}]})
    found["aisuite"] = (status, body["error"]["code"])
    frames = await ws_ask(server, user, room_id, "more")
    found["ws"] = (frames[-1].get("code", frames[-1]["type"]), frames[-1].get("message", ""))
    return found


async def test_each_path_is_refused_at_its_cap(make_settings: Any) -> None:
    # One reply may run per user and none may wait per room: while one runs (held until
    # stopped), the room paths are refused `conflict` (409), the stateless ones
    # `rate_limited` (429).
    provider = ScriptedProvider(gate=asyncio.Event())
    server = await start_parlour(make_settings(
        assistant__max_queued_replies_per_room=0, limits__max_concurrent_replies=1,
        llm__default_model="scripted:fixed",
    ), providers={"scripted": provider})
    try:
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"model": "scripted:fixed"}))["room"]["room_id"]
        first = (await s.ok("send_message", {"room_id": room_id, "content": "go"}))["message"]
        await s.wait("assistant_started", timeout=10)
        found = await refusals(server, user, s, room_id, first["message_id"])
        assert found["send_message"][0] == "conflict" and "busy" in found["send_message"][1]
        assert found["regenerate"][0] == "conflict"
        assert found["run_chat"] == (409, "conflict")
        assert found["run"] == (429, "rate_limited")
        assert found["aisuite"] == (429, "rate_limited")
        assert found["ws"][0] == "conflict"
        # Refused before anything was stored.
        assert await user_messages(server, user, room_id) == ["go"]
        await s.ok("stop_generation", {"room_id": room_id})
        await s.wait("assistant_done", timeout=10)
        async with server.http.get(server.url + "/internal/metrics") as resp:
            text = await resp.text()
        assert 'parlour_admissions_refused_total{code="conflict",path="message"} 1.0' in text
        assert 'parlour_admissions_refused_total{code="rate_limited",path="aisuite"} 1.0' in text
    finally:
        await server.close()


async def test_each_path_is_refused_past_the_daily_budget(make_settings: Any) -> None:
    server = await start_parlour(make_settings(
        limits__max_tokens_per_day=20, llm__default_model="scripted:fixed",
    ), providers={"scripted": ScriptedProvider()})
    try:
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"model": "scripted:fixed"}))["room"]["room_id"]
        # A stateless call spends the budget too.
        status, data = await server.request(
            "POST", "/api/v1/run", user, json={"text": "spend " * 40})
        assert status == 200 and data["usage"]["input_tokens"] + data["usage"]["output_tokens"] >= 20
        found = await refusals(server, user, s, room_id, "nothing-yet")
        assert found["send_message"][0] == "rate_limited" and "daily" in found["send_message"][1]
        assert found["run_chat"] == (429, "rate_limited")
        assert found["run"] == (429, "rate_limited")
        assert found["aisuite"] == (429, "rate_limited")
        assert found["ws"][0] == "rate_limited"
        assert await user_messages(server, user, room_id) == []
        async with server.http.post(server.url + "/api/v1/run", json={"text": "more"},
                                    headers={"Authorization": f"Bearer {user.token}"}) as resp:
            assert resp.status == 429
            assert 0 < int(resp.headers["Retry-After"]) <= 86_400  # at 00:00 UTC
        # regenerate checks the message first: refused on the budget for a real one.
        await s.ok("update_room", {"room_id": room_id, "assistant_mode": "off"})
        note = (await s.ok("send_message", {"room_id": room_id, "content": "a note"}))["message"]
        ack = await s.call("regenerate", {"room_id": room_id, "message_id": note["message_id"]})
        assert ack["error"]["code"] == "rate_limited"
    finally:
        await server.close()


async def test_run_and_websocket_stop_waiting_when_no_reply_starts(make_settings: Any) -> None:
    gate = asyncio.Event()  # the first reply runs until both waits gave up
    provider = ScriptedProvider(deltas=SLOW[:5], gate=gate)
    server = await start_parlour(make_settings(
        assistant__reply_start_timeout_seconds=0.5,
    ), providers={"scripted": provider})
    try:
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"model": "scripted:fixed"}))["room"]["room_id"]
        await s.ok("send_message", {"room_id": room_id, "content": "long one"})
        await s.wait("assistant_started", timeout=10)
        status, body = await server.request(
            "POST", "/api/v1/run", user, json={"text": "waiting", "chat_id": room_id})
        assert status == 503 and body["error"]["code"] == "unavailable"
        assert "no reply started within 0.5 s" in body["error"]["message"]
        frames = await ws_ask(server, user, room_id, "also waiting")
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "unavailable"
        assert "saved" in frames[-1]["message"]
        gate.set()
        # Both questions were kept and are answered in the chat, in order.
        done = await s.wait("assistant_done", count=3, timeout=20)
        assert [d["finish_reason"] for d in done] == ["stop"] * 3
        assert await user_messages(server, user, room_id) == [
            "long one", "waiting", "also waiting"]
    finally:
        await server.close()


async def test_run_in_a_chat_answers_with_the_requested_model(make_settings: Any) -> None:
    server = await start_parlour(make_settings(), providers={"scripted": ScriptedProvider()})
    try:
        user = await server.signup()
        status, chat = await server.request(
            "POST", "/api/v1/chat", user, json={"model": "scripted:fixed"})
        status, data = await server.request("POST", "/api/v1/run", user, json={
            "text": "say these words", "chat_id": chat["chat_id"], "model": "scripted:echo"})
        assert status == 200 and data["answer"] == "say these words "
        assert data["model"] == "scripted:echo"
        status, data = await server.request("POST", "/api/v1/run", user, json={
            "text": "x", "chat_id": chat["chat_id"], "model": "nosuch:model"})
        assert status == 422
    finally:
        await server.close()


async def test_stateless_paths_record_usage_in_metrics(make_settings: Any) -> None:
    server = await start_parlour(make_settings(llm__default_model="scripted:fixed"),
                                 providers={"scripted": ScriptedProvider()})
    try:
        user, other = await server.signup(), await server.signup()
        status, _ = await server.request("POST", "/api/v1/run", user, json={"text": "one"})
        assert status == 200
        async with server.http.post(server.url + "/api/v1/aisuite/chat", json={
            "model": "scripted:fixed", "messages": [{"role": "user", "content": "two"}],
            "stream": True}, headers={"Authorization": f"Bearer {user.token}"}) as resp:
            assert resp.status == 200 and (await resp.read()).endswith(b"data: [DONE]\n\n")
        status, mine = await server.request("GET", "/api/v1/metrics", user)
        assert mine["answers"] == 2 and mine["questions"] == 2
        assert mine["answers_by_path"] == {"run": 1, "aisuite": 1}
        assert mine["tokens"]["output_tokens"] == 24
        assert mine["latency_ms"]["p50"] is not None
        assert mine["time_to_first_token_ms"]["p50"] is not None
        status, theirs = await server.request("GET", "/api/v1/metrics", other)
        assert theirs["answers"] == 0
        async with server.http.get(server.url + "/internal/metrics") as resp:
            text = await resp.text()
        assert 'parlour_assistant_replies_total{finish_reason="stop",path="run"} 1.0' in text
        assert 'parlour_assistant_replies_total{finish_reason="stop",path="aisuite"} 1.0' in text
        assert "parlour_replies_running 0.0" in text
    finally:
        await server.close()
