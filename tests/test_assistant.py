"""The assistant in rooms, with the scripted provider: streaming, modes, stop, regenerate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.llm.base import TokenUsage
from tests.client import Parlour, SocketClient, start_parlour
from tests.scripted_provider import ScriptedProvider


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider(delay=0.02)


@pytest.fixture
async def server(make_settings: Any, scripted: ScriptedProvider) -> AsyncIterator[Parlour]:
    server = await start_parlour(
        make_settings(assistant__delta_interval_ms=0), providers={"scripted": scripted}
    )
    yield server
    await server.close()


def text_of(deltas: list[dict[str, Any]], message_id: str) -> tuple[list[int], str]:
    mine = [d for d in deltas if d["message_id"] == message_id]
    return [d["seq"] for d in mine], "".join(d["delta"] for d in mine)


async def room_with(server: Parlour, *others: Any, **settings: Any) -> tuple[Any, SocketClient, str]:
    owner = await server.signup()
    s = await server.socket(owner)
    room = (await s.ok("create_room", {"model": "scripted:fixed", **settings}))["room"]
    for other in others:
        await s.ok("invite", {"room_id": room["room_id"], "email": other.email})
    return owner, s, room["room_id"]


async def test_shared_room_both_members_get_every_delta_in_order(server: Parlour) -> None:
    bob = await server.signup("Bob")
    alice, a, room_id = await room_with(server, bob)
    b = await server.socket(bob)
    await b.ok("join_room", {"room_id": room_id})

    await a.ok("send_message", {"room_id": room_id, "content": "no mention here"})
    await a.ok("send_message", {"room_id": room_id, "content": "@assistant what now?"})
    done_a = (await a.wait("assistant_done", timeout=10))[0]
    done_b = (await b.wait("assistant_done", timeout=10))[0]
    assert done_a == done_b
    message = done_a["message"]
    assert done_a["finish_reason"] == "stop" and message["status"] == "complete"
    assert message["role"] == "assistant" and message["model"] == "scripted:fixed"
    assert message["content"] == "".join(f"word{i} " for i in range(12))
    assert message["usage"]["output_tokens"] == 12 and message["usage"]["input_tokens"] > 0

    for client in (a, b):
        (started,) = client.named("assistant_started")
        assert started["message_id"] == message["message_id"] and started["model"] == "scripted:fixed"
        seqs, text = text_of(client.named("assistant_delta"), message["message_id"])
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 1
        assert text == message["content"]  # deltas, never accumulated text
        received = [m["message"] for m in client.named("message_received")]
        assert [m["role"] for m in received] == ["user", "user", "assistant"]

    # Only the mentioning message was answered, and the reply is stored.
    status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", alice)
    stored = data["messages"]
    assert [m["role"] for m in stored] == ["user", "user", "assistant"]
    assert stored[2]["reply_to"] == stored[1]["message_id"] and stored[2]["status"] == "complete"


async def test_private_room_answers_every_message(server: Parlour, scripted: ScriptedProvider) -> None:
    _, s, room_id = await room_with(server, system_prompt="Be terse.")
    await s.ok("send_message", {"room_id": room_id, "content": "hello"})
    await s.wait("assistant_done", timeout=10)
    prompt = scripted.prompts[-1]
    assert prompt[0].role == "system" and prompt[0].content.startswith("Be terse.")
    assert prompt[-1].role == "user" and prompt[-1].content == "hello"


async def test_deltas_are_coalesced(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=[f"{i}," for i in range(300)])
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        _, s, room_id = await room_with(server)
        await s.ok("send_message", {"room_id": room_id, "content": "count"})
        (done,) = await s.wait("assistant_done", timeout=10)
        seqs, text = text_of(s.named("assistant_delta"), done["message_id"])
        assert text == "".join(f"{i}," for i in range(300))
        assert 1 <= len(seqs) < 300 and seqs == list(range(1, len(seqs) + 1))
    finally:
        await server.close()


async def test_stop_mid_stream_saves_partial_reply(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=[f"w{i} " for i in range(200)], delay=0.02)
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        user, s, room_id = await room_with(server)
        ack = await s.call("stop_generation", {"room_id": room_id})
        assert ack["error"]["code"] == "not_found"  # nothing to stop yet
        await s.ok("send_message", {"room_id": room_id, "content": "go on and on"})
        await s.wait("assistant_delta", count=3, timeout=10)
        stopped = await s.ok("stop_generation", {"room_id": room_id})
        (done,) = await s.wait("assistant_done", timeout=10)
        assert done["finish_reason"] == "cancelled" and stopped["message_id"] == done["message_id"]
        message = done["message"]
        assert message["status"] == "cancelled" and message["content"].startswith("w0 w1 w2")
        assert len(message["content"]) < len("".join(f"w{i} " for i in range(200)))
        _, text = text_of(s.named("assistant_delta"), message["message_id"])
        assert text == message["content"]
        status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
        assert data["messages"][-1]["status"] == "cancelled"
        assert data["messages"][-1]["content"] == message["content"]
    finally:
        await server.close()


async def test_regenerate_answers_the_same_message_again(server: Parlour) -> None:
    user, s, room_id = await room_with(server)
    sent = (await s.ok("send_message", {"room_id": room_id, "content": "hi"}))["message"]
    (first,) = await s.wait("assistant_done", timeout=10)
    await s.ok("regenerate", {"room_id": room_id, "message_id": sent["message_id"]})
    done = await s.wait("assistant_done", count=2, timeout=10)
    second = done[1]["message"]
    assert second["reply_to"] == sent["message_id"] == first["message"]["reply_to"]
    assert second["message_id"] != first["message"]["message_id"]
    ack = await s.call("regenerate", {"room_id": room_id, "message_id": second["message_id"]})
    assert ack["error"]["code"] == "invalid_payload"
    status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "assistant"]


async def test_late_joiner_sees_the_stream_without_gap_or_duplicate(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=[f"t{i} " for i in range(60)], delay=0.01)
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        bob = await server.signup()
        _, a, room_id = await room_with(server, bob, assistant_mode="always")
        await a.ok("send_message", {"room_id": room_id, "content": "tell me"})
        await a.wait("assistant_delta", count=10, timeout=10)
        b = await server.socket(bob)
        joined = await b.ok("join_room", {"room_id": room_id})
        active = joined["active_stream"]
        assert active["seq"] >= 10 and active["content"].startswith("t0 ")
        (done,) = await b.wait("assistant_done", timeout=10)
        later = [d for d in b.named("assistant_delta") if d["seq"] > active["seq"]]
        assert [d["seq"] for d in later] == list(range(active["seq"] + 1, active["seq"] + 1 + len(later)))
        assert active["content"] + "".join(d["delta"] for d in later) == done["message"]["content"]
    finally:
        await server.close()


async def test_provider_error_saves_partial_and_reports(server: Parlour) -> None:
    user, s, room_id = await room_with(server)
    await s.ok("update_room", {"room_id": room_id, "model": "scripted:fail"})
    await s.ok("send_message", {"room_id": room_id, "content": "break"})
    (done,) = await s.wait("assistant_done", timeout=10)
    assert done["finish_reason"] == "error"
    assert done["message"]["status"] == "error" and done["message"]["content"] == "word0 word1 word2 "
    (err,) = await s.wait("error")
    assert err["code"] == "provider_error" and "502" in err["message"] and err["room_id"] == room_id
    status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    assert data["messages"][-1]["status"] == "error"


async def test_disconnect_does_not_stop_the_reply_for_others(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=[f"d{i} " for i in range(40)], delay=0.01)
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        bob = await server.signup()
        _, a, room_id = await room_with(server, bob, assistant_mode="always")
        b = await server.socket(bob)
        await b.ok("join_room", {"room_id": room_id})
        await a.ok("send_message", {"room_id": room_id, "content": "go"})
        await a.wait("assistant_delta", count=2, timeout=10)
        await a.disconnect()
        (done,) = await b.wait("assistant_done", timeout=10)
        assert done["finish_reason"] == "stop" and done["message"]["content"].endswith("d39 ")
    finally:
        await server.close()


async def test_unknown_and_unconfigured_models(server: Parlour, llm_env: Any) -> None:
    user = await server.signup()
    s = await server.socket(user)
    ack = await s.call("create_room", {"model": "nosuch:model"})
    assert ack["error"]["code"] == "invalid_payload" and "nosuch" in ack["error"]["message"]
    ack = await s.call("create_room", {"model": "gpt-4o"})
    assert ack["error"]["code"] == "invalid_payload"
    ack = await s.call("create_room", {"model": "openai:gpt-4o-mini"})
    assert ack["error"]["code"] == "unavailable" and "OPENAI_API_KEY" in ack["error"]["message"]


async def test_queued_replies_and_queue_limit(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=["a ", "b "], delay=0.05)
    server = await start_parlour(
        make_settings(assistant__max_queued_replies_per_room=1, limits__max_concurrent_replies=5),
        providers={"scripted": provider},
    )
    try:
        _, s, room_id = await room_with(server)
        await s.ok("send_message", {"room_id": room_id, "content": "one"})
        await s.ok("send_message", {"room_id": room_id, "content": "two"})
        ack = await s.call("send_message", {"room_id": room_id, "content": "three"})
        assert ack["error"]["code"] == "conflict"
        done = await s.wait("assistant_done", count=2, timeout=10)
        assert [d["finish_reason"] for d in done] == ["stop", "stop"]
        user_ids = [m["message"]["message_id"] for m in s.named("message_received")
                    if m["message"]["role"] == "user"]
        assert [d["message"]["reply_to"] for d in done] == user_ids  # in order, one at a time
    finally:
        await server.close()


async def test_cost_comes_from_the_price_file(make_settings: Any, llm_env: Any) -> None:
    # The scripted provider answers under the name "openai", so the catalog prices apply.
    provider = ScriptedProvider(name="openai", cached_tokens=2)
    server = await start_parlour(make_settings(), providers={"openai": provider})
    try:
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"model": "openai:gpt-4o-mini"}))["room"]["room_id"]
        await s.ok("send_message", {"room_id": room_id, "content": "price me"})
        (done,) = await s.wait("assistant_done", timeout=10)
        usage = done["message"]["usage"]
        info = server.services.registry.model_info("openai:gpt-4o-mini")
        assert info is not None
        expected = (
            (usage["input_tokens"] - 2) * info.input_per_mtok
            + 2 * info.cached_per_mtok
            + usage["output_tokens"] * info.output_per_mtok
        ) / 1_000_000
        assert usage["cost_usd"] == pytest.approx(expected)
        assert usage["cost_usd"] == pytest.approx(server.services.registry.cost_usd(
            "openai:gpt-4o-mini", TokenUsage(usage["input_tokens"], usage["output_tokens"], 2)
        ))
        assert usage["cost_usd"] > 0
    finally:
        await server.close()


async def test_restart_marks_interrupted_replies_error(
    server: Parlour, make_settings: Any
) -> None:
    user, s, room_id = await room_with(server)
    old = datetime.now(UTC) - timedelta(minutes=5)
    messages = server.services.mongo.messages
    await messages.insert_one({
        "_id": "crashed", "room_id": room_id, "seq": 99, "role": "assistant", "author": None,
        "content": "half an ans", "status": "streaming", "created_at": old, "checkpoint_at": old,
    })
    # A node starting on the same database sweeps replies whose node is gone.
    restarted = await start_parlour(make_settings())
    try:
        for _ in range(100):
            doc = await messages.find_one({"_id": "crashed"})
            if doc is not None and doc["status"] != "streaming":
                break
            await asyncio.sleep(0.05)
        assert doc is not None and doc["status"] == "error" and doc["content"] == "half an ans"
        status, data = await restarted.request("GET", f"/api/v1/chat/{room_id}/messages", user)
        assert data["messages"][-1]["status"] == "error"
    finally:
        await restarted.close()


async def test_daily_token_budget(make_settings: Any) -> None:
    provider = ScriptedProvider()
    server = await start_parlour(
        make_settings(limits__max_tokens_per_day=20), providers={"scripted": provider}
    )
    try:
        user, s, room_id = await room_with(server)
        await s.ok("send_message", {"room_id": room_id, "content": "first"})
        (done,) = await s.wait("assistant_done", timeout=10)
        usage = done["message"]["usage"]
        assert usage["input_tokens"] + usage["output_tokens"] >= 20
        ack = await s.call("send_message", {"room_id": room_id, "content": "second"})
        assert ack["error"]["code"] == "rate_limited" and "daily" in ack["error"]["message"]
        # Refused before anything was stored; a message that needs no reply still goes.
        await s.ok("update_room", {"room_id": room_id, "assistant_mode": "off"})
        await s.ok("send_message", {"room_id": room_id, "content": "just a note"})
        status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
        assert [m["content"] for m in data["messages"]][-1] == "just a note"
        assert "second" not in [m["content"] for m in data["messages"]]
    finally:
        await server.close()
