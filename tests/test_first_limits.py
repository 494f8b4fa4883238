"""One message limit on every path, and context overflows that name the setting (issue 12, §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from app.config import LLMSettings
from app.errors import AppError
from app.llm.base import ChatMessage, ChatParams
from app.llm.local_server import LocalLlamaServer
from app.llm.registry import build_registry
from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider

LIMIT = 16_000  # the default limits.max_message_chars


@pytest.fixture
async def server(make_settings: Any) -> AsyncIterator[Parlour]:
    provider = ScriptedProvider()
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed"), providers={"scripted": provider}
    )
    yield server
    await server.close()


def too_large(body: Any) -> str:
    assert body["error"]["code"] == "payload_too_large", body
    message: str = body["error"]["message"]
    assert "limits.max_message_chars" in message and str(LIMIT) in message
    return message


async def test_socketio_event_over_a_megabyte_gets_payload_too_large(server: Parlour) -> None:
    user = await server.signup()
    s = await server.socket(user)
    room_id = (await s.ok("create_room", {}))["room"]["room_id"]
    for size in (LIMIT + 1, 1_100_000):
        ack = await s.call("send_message", {"room_id": room_id, "content": "x" * size})
        assert ack["ok"] is False and ack["error"]["code"] == "payload_too_large"
        assert "limits.max_message_chars" in ack["error"]["message"]
    # Still connected, and nothing was stored.
    await s.ok("send_message", {"room_id": room_id, "content": "x" * LIMIT})
    status, history = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    assert [len(m["content"]) for m in history["messages"] if m["role"] == "user"] == [LIMIT]


async def test_rest_paths_take_the_same_limit(server: Parlour) -> None:
    user = await server.signup()
    over = "x" * (LIMIT + 1)
    status, body = await server.request("POST", "/api/v1/run", user, json={"text": over})
    assert status == 413
    assert too_large(body).startswith(f"text: {LIMIT + 1} characters")
    status, chat = await server.request("POST", "/api/v1/chat", user, json={})
    status, body = await server.request(
        "POST", "/api/v1/run", user, json={"text": over, "chat_id": chat["chat_id"]})
    assert status == 413 and too_large(body).startswith("content:")
    # /aisuite/chat counts every message: two halves over the limit together.
    half = "y" * (LIMIT // 2 + 1)
    status, body = await server.request("POST", "/api/v1/aisuite/chat", user, json={
        "model": "scripted:fixed",
        "messages": [{"role": "user", "content": half}, {"role": "user", "content": half}],
    })
    assert status == 413 and too_large(body).startswith("messages:")
    status, _ = await server.request("POST", "/api/v1/aisuite/chat", user, json={
        "model": "scripted:fixed", "messages": [{"role": "user", "content": "y" * LIMIT}]})
    assert status == 200


async def test_plain_websocket_frames_take_the_same_limit(server: Parlour) -> None:
    user = await server.signup()
    status, data = await server.request("GET", "/api/v1/session_id", user)
    url = f"{server.url}/api/v1/ws/chat?session_id={data['session_id']}&token={user.token}"
    async with server.http.ws_connect(url) as ws:
        for size in (LIMIT + 1, 1_100_000):
            frame = {"type": "message", "content": "z" * size}
            await ws.send_str(orjson.dumps(frame).decode())
            error = orjson.loads((await ws.receive(timeout=10)).data)
            assert error["type"] == "error" and error["code"] == "payload_too_large"
        assert not ws.closed


async def test_context_overflow_names_the_setting(
    llama_server: LocalLlamaServer, llm_env: Any
) -> None:
    """The embedded llama-server refuses a prompt over its window: the error says what to set."""
    registry = build_registry(
        LLMSettings(), llama_server.base_url, local_api_key=llama_server.api_key
    )
    provider, model = registry.resolve("local:smollm2")
    prompt = "word " * 6000  # well over the fixture's 4096-token window
    try:
        with pytest.raises(AppError) as err:
            async for _ in provider.stream_chat(
                [ChatMessage(role="user", content=prompt)], model, ChatParams(max_tokens=4)
            ):
                pass
    finally:
        await registry.close()
    assert err.value.code == "payload_too_large"
    assert "context window of 4096 tokens" in err.value.message
    assert "llm.local_context_window" in err.value.message
