"""REST and plain-WebSocket access to the assistant, through the same room service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider

FULL = "".join(f"word{i} " for i in range(12))


@pytest.fixture
async def server(make_settings: Any) -> AsyncIterator[Parlour]:
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed"),
        providers={"scripted": ScriptedProvider()},
    )
    yield server
    await server.close()


async def test_model_catalog_pages(server: Parlour, llm_env: Any) -> None:
    user = await server.signup()
    status, page = await server.request("GET", "/api/v1/model?page=1&page_size=5", user)
    assert status == 200 and len(page["models"]) == 5 and page["total"] > 5
    model = page["models"][0]
    assert set(model) == {"id", "provider", "name", "context_window", "input_per_mtok",
                          "output_per_mtok", "cached_per_mtok", "available", "demo", "notice",
                          "vision", "audio"}
    status, last = await server.request(
        "GET", f"/api/v1/model?page={page['total'] // 5 + 1}&page_size=5", user
    )
    ids = [m["id"] for m in page["models"] + last["models"]]
    assert len(ids) == len(set(ids))
    openai = [m for m in page["models"] + last["models"] if m["provider"] == "openai"]
    assert all(m["available"] is False for m in openai)  # no OPENAI_API_KEY here
    status, data = await server.request("GET", "/api/v1/model?page=0", user)
    assert status == 422


async def test_openai_shaped_chat_plain_and_streamed(server: Parlour) -> None:
    user = await server.signup()
    req = {"model": "scripted:fixed", "messages": [{"role": "user", "content": "hi"}]}
    status, data = await server.request("POST", "/api/v1/aisuite/chat", user, json=req)
    assert status == 200 and data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": FULL}
    assert data["usage"]["completion_tokens"] == 12

    async with server.http.post(
        server.url + "/api/v1/aisuite/chat", json={**req, "stream": True},
        headers={"Authorization": f"Bearer {user.token}"},
    ) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    events = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == FULL and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 12

    bad = {"model": "scripted:fixed", "messages": []}
    status, data = await server.request("POST", "/api/v1/aisuite/chat", user, json=bad)
    assert status == 422 and "messages" in data["error"]["message"]


async def test_run_stateless_and_in_a_chat_with_usage(server: Parlour) -> None:
    user = await server.signup()
    status, data = await server.request("POST", "/api/v1/run", user, json={"text": "hello"})
    assert status == 200 and data["answer"] == FULL and data["usage"]["output_tokens"] == 12

    status, chat = await server.request(
        "POST", "/api/v1/chat", user, json={"assistant_mode": "off"}
    )
    chat_id = chat["chat_id"]
    # The room would not answer by itself (mode off): /run asks explicitly.
    status, data = await server.request(
        "POST", "/api/v1/run", user, json={"text": "in the room", "chat_id": chat_id}
    )
    assert status == 200 and data["answer"] == FULL and data["usage"]["output_tokens"] == 12
    status, messages = await server.request("GET", f"/api/v1/chat/{chat_id}/messages", user)
    assert [m["role"] for m in messages["messages"]] == ["user", "assistant"]

    status, usage = await server.request(
        "GET", f"/api/v1/messages/{data['message_id']}/usage", user
    )
    assert status == 200 and usage["usage"]["output_tokens"] == 12
    status, totals = await server.request("GET", f"/api/v1/chat/{chat_id}/usage", user)
    assert totals["models"][0]["model"] == "scripted:fixed"
    assert totals["total"]["replies"] == 1 and totals["total"]["output_tokens"] == 12

    other = await server.signup()
    for path in (f"/api/v1/messages/{data['message_id']}/usage", f"/api/v1/chat/{chat_id}/usage"):
        status, _ = await server.request("GET", path, other)
        assert status == 404

    async with server.http.post(
        server.url + "/api/v1/run", data={"text": "streamed", "chat_id": chat_id},
        headers={"Authorization": f"Bearer {user.token}", "Accept": "text/event-stream"},
    ) as resp:
        raw = (await resp.read()).decode()
    assert "event: delta" in raw and "event: done" in raw


async def test_plain_websocket_session(server: Parlour) -> None:
    user = await server.signup()
    status, data = await server.request("GET", "/api/v1/session_id", user)
    session = data["session_id"]
    url = f"{server.url}/api/v1/ws/chat?session_id={session}&token={user.token}"
    async with server.http.ws_connect(url) as ws:
        await ws.send_str(orjson.dumps({"type": "message", "content": "hi there"}).decode())
        frames = []
        while True:
            frame = orjson.loads((await ws.receive()).data)
            frames.append(frame)
            if frame["type"] == "done":
                break
        assert {f["type"] for f in frames[:-1]} == {"delta"}
        assert "".join(f["delta"] for f in frames[:-1]) == FULL
        assert frames[-1]["message"]["content"] == FULL
        await ws.send_str("{nope")
        err = orjson.loads((await ws.receive()).data)
        assert err == {"type": "error", "code": "invalid_payload", "message": "frame: not valid JSON"}
    status, history = await server.request("GET", f"/api/v1/chat/{session}/messages", user)
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]

    other = await server.signup()
    async with aiohttp.ClientSession() as fresh:  # no cookies
        url = f"{server.url}/api/v1/ws/chat?session_id={session}"
        async with fresh.get(url) as resp:
            assert resp.status == 401
        async with fresh.get(f"{url}&token={other.token}") as resp:
            assert resp.status == 404


async def test_user_metrics_own_and_per_chat(server: Parlour) -> None:
    user, other = await server.signup(), await server.signup()
    s = await server.socket(user)
    room_id = (await s.ok("create_room", {"model": "scripted:fixed"}))["room"]["room_id"]
    for text in ("one", "two"):
        await s.ok("send_message", {"room_id": room_id, "content": text})
    await s.wait("assistant_done", count=2, timeout=10)
    status, mine = await server.request("GET", "/api/v1/metrics", user)
    assert status == 200 and mine["scope"] == "user"
    assert mine["questions"] == 2 and mine["answers"] == 2
    assert mine["tokens"]["output_tokens"] == 24
    latency = mine["latency_ms"]
    assert latency["p50"] is not None and latency["p50"] <= latency["p95"]
    assert mine["time_to_first_token_ms"]["mean"] is not None
    # Per UTC day, oldest first, with the empty days: today holds both answers.
    assert len(mine["daily"]) == 30 and mine["daily"][-1]["answers"] == 2
    assert mine["daily"][-1]["output_tokens"] == 24
    assert sum(d["answers"] for d in mine["daily"][:-1]) == 0
    status, week = await server.request("GET", "/api/v1/metrics?days=7", user)
    assert status == 200 and len(week["daily"]) == 7
    status, bad = await server.request("GET", "/api/v1/metrics?days=0", user)
    assert status in (400, 422) and bad["error"]["code"] == "invalid_payload"
    status, theirs = await server.request("GET", "/api/v1/metrics", other)
    assert theirs["questions"] == 0 and theirs["answers"] == 0
    status, chat = await server.request("GET", f"/api/v1/metrics/sessions/{room_id}", user)
    assert chat["chat_id"] == room_id and chat["answers"] == 2
    status, _ = await server.request("GET", f"/api/v1/metrics/sessions/{room_id}", other)
    assert status == 404
