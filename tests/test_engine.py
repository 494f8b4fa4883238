"""The reply engine's races and lifecycle: stop at any point, failures mid-reply, bursts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from app.assistant.source import ReplyRequest
from app.llm.base import LoopEvent, StreamEnd, TextDelta, TokenUsage, ToolCallUpdate
from storage.embedded_mongo import EmbeddedMongo
from tests.client import Parlour, SocketClient, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.servers import wait_for

SLOW = [f"s{i} " for i in range(100)]
# Resolves "scripted:fixed" for the tests whose events come from their own source.
SCRIPTED = {"scripted": ScriptedProvider()}


async def private_room(server: Parlour, model: str = "scripted:fixed") -> tuple[Any, SocketClient, str]:
    user = await server.signup()
    s = await server.socket(user)
    room = (await s.ok("create_room", {"model": model, "assistant_mode": "always"}))["room"]
    return user, s, room["room_id"]


async def stored(server: Parlour, user: Any, room_id: str) -> list[dict[str, Any]]:
    status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    assert status == 200, data
    return list(data["messages"])


def engine_is_idle(server: Parlour, user_id: str, room_id: str) -> None:
    """No reply holds anything on the node: room places, running slots."""
    gate = server.services.engine.gate
    assert gate.pending(room_id) == 0 and gate.running(user_id) == 0


async def test_stop_before_the_first_delta_leaves_no_phantom(make_settings: Any) -> None:
    # The model takes a while to its first token: the stop lands after assistant_started,
    # before anything streamed. A second message waits behind the first reply.
    provider = ScriptedProvider(deltas=["late "] * 3, delay=0.6)
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        user, s, room_id = await private_room(server)
        await s.ok("send_message", {"room_id": room_id, "content": "first"})
        await s.ok("send_message", {"room_id": room_id, "content": "second"})
        (started,) = await s.wait("assistant_started", timeout=10)
        stopped = await s.ok("stop_generation", {"room_id": room_id})
        assert stopped["message_id"] == started["message_id"]
        done = (await s.wait("assistant_done", timeout=10))[0]
        assert done["message_id"] == started["message_id"]
        assert done["finish_reason"] == "cancelled" and done["message"]["content"] == ""
        # The stream log entry is closed at once, whatever the next reply does.
        log = await server.services.engine.active_streams(room_id)
        assert started["message_id"] not in [a["message_id"] for a in log]
        # The queued reply proceeds and completes.
        dones = await s.wait("assistant_done", count=2, timeout=10)
        assert dones[1]["finish_reason"] == "stop"
        joined = await (await server.socket(user)).ok("join_room", {"room_id": room_id})
        assert "active_stream" not in joined
        messages = await stored(server, user, room_id)
        assert [m["status"] for m in messages if m["role"] == "user"] == ["complete"] * 2
        assert [m["status"] for m in messages if m["role"] == "assistant"] == [
            "cancelled", "complete"]
        engine_is_idle(server, user.user_id, room_id)
    finally:
        await server.close()


async def test_a_reply_after_a_stop_runs_with_a_clean_task(make_settings: Any) -> None:
    # Each reply is a new task: nothing of the stopped reply's cancellation is left, so
    # asyncio.timeout and TaskGroup inside the next reply's source behave.
    seen: list[int] = []

    async def source(request: ReplyRequest) -> AsyncIterator[LoopEvent]:
        task = asyncio.current_task()
        assert task is not None
        seen.append(task.cancelling())
        if request.reply_to.content == "slow":
            for i in range(200):
                await asyncio.sleep(0.02)
                yield TextDelta(f"w{i} ")
        else:
            try:
                async with asyncio.timeout(0.05):
                    await asyncio.sleep(5)
            except TimeoutError:
                yield TextDelta("timeout ok ")
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(_fail_soon())
                    await asyncio.sleep(5)
            except* ValueError:
                yield TextDelta("group ok")
        yield StreamEnd(TokenUsage(3, 2), "stop")

    server = await start_parlour(make_settings(), providers=SCRIPTED, reply_source=source)
    try:
        user, s, room_id = await private_room(server, model="scripted:fixed")
        await s.ok("send_message", {"room_id": room_id, "content": "slow"})
        await s.wait("assistant_delta", count=2, timeout=10)
        await s.ok("stop_generation", {"room_id": room_id})
        await s.wait("assistant_done", timeout=10)
        await s.ok("send_message", {"room_id": room_id, "content": "next"})
        done = (await s.wait("assistant_done", count=2, timeout=10))[1]
        assert done["message"]["content"] == "timeout ok group ok"
        assert seen == [0, 0]
    finally:
        await server.close()


async def _fail_soon() -> None:
    await asyncio.sleep(0.01)
    raise ValueError("child failed")


async def test_mongodb_dying_mid_reply_leaves_no_phantom(make_settings: Any) -> None:
    # A MongoDB of its own, killed while a reply checkpoints into it.
    mongo = EmbeddedMongo(":memory:")
    uri = await mongo.start()
    provider = ScriptedProvider(deltas=SLOW, delay=0.03)
    server = await start_parlour(
        make_settings(mongo__uri=uri, mongo__timeout_seconds=1,
                      assistant__checkpoint_seconds=0.2),
        providers={"scripted": provider},
    )
    try:
        user, s, room_id = await private_room(server)
        await s.ok("send_message", {"room_id": room_id, "content": "go"})
        await s.wait("assistant_delta", count=3, timeout=10)
        await mongo.stop(grace_seconds=0)
        (done,) = await s.wait("assistant_done", timeout=20)
        # The room still learns how it ended, from the reply's own state.
        assert done["finish_reason"] == "error" and done["message"]["status"] == "error"
        (err,) = await s.wait("error")
        assert err["code"] == "unavailable" and err["room_id"] == room_id
        assert await server.services.engine.active_streams(room_id) == []
        engine_is_idle(server, user.user_id, room_id)
    finally:
        await server.close()
        await mongo.stop()


async def test_room_deletion_ends_running_and_queued_replies(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=SLOW, delay=0.03)
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        user, s, room_id = await private_room(server)
        for text in ("one", "two", "three"):
            await s.ok("send_message", {"room_id": room_id, "content": text})
        await s.wait("assistant_delta", count=2, timeout=10)
        status, _ = await server.request("DELETE", f"/api/v1/chat/{room_id}", user)
        assert status == 204
        assert await server.services.engine.active_streams(room_id) == []
        engine_is_idle(server, user.user_id, room_id)
        assert await server.services.mongo.messages.count_documents({"room_id": room_id}) == 0
        assert len(s.named("assistant_started")) == 1
    finally:
        await server.close()


async def test_burst_of_sends_does_not_pass_the_room_cap_together(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=["a ", "b "], gate=asyncio.Event())
    server = await start_parlour(
        make_settings(assistant__max_queued_replies_per_room=2, limits__max_concurrent_replies=1),
        providers={"scripted": provider},
    )
    try:
        user, s, room_id = await private_room(server)
        acks = await asyncio.gather(*(
            s.call("send_message", {"room_id": room_id, "content": f"m{i}"}) for i in range(20)
        ))
        codes = [a["error"]["code"] if not a["ok"] else "ok" for a in acks]
        assert codes.count("ok") == 3 and codes.count("conflict") == 17
        assert provider.gate is not None
        provider.gate.set()
        done = await s.wait("assistant_done", count=3, timeout=15)
        assert [d["finish_reason"] for d in done] == ["stop"] * 3
        users = [m for m in await stored(server, user, room_id) if m["role"] == "user"]
        assert len(users) == 3  # refused messages were never stored
        await asyncio.sleep(0.2)
        assert len(s.named("assistant_done")) == 3
    finally:
        await server.close()


async def test_burst_of_stateless_calls_does_not_pass_the_user_cap(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=["a ", "b "], gate=asyncio.Event())
    server = await start_parlour(
        make_settings(limits__max_concurrent_replies=2, llm__default_model="scripted:fixed"),
        providers={"scripted": provider},
    )
    try:
        user = await server.signup()
        calls = [server.request("POST", "/api/v1/run", user, json={"text": f"q{i}"})
                 for i in range(10)]
        calls += [server.request("POST", "/api/v1/aisuite/chat", user, json={
            "model": "scripted:fixed", "messages": [{"role": "user", "content": f"c{i}"}],
        }) for i in range(10)]
        tasks = [asyncio.ensure_future(call) for call in calls]
        await wait_for(lambda: sum(t.done() for t in tasks) == 18, timeout=15)
        assert provider.gate is not None
        provider.gate.set()
        results = await asyncio.gather(*tasks)
        statuses = [status for status, _ in results]
        assert statuses.count(200) == 2 and statuses.count(429) == 18
        refused = next(body for status, body in results if status == 429)
        assert refused["error"]["code"] == "rate_limited"
        assert "running" in refused["error"]["message"]
        assert server.services.engine.gate.running(user.user_id) == 0
    finally:
        await server.close()


async def test_a_third_quick_message_is_stored_and_answered_in_order(
    make_settings: Any,
) -> None:
    provider = ScriptedProvider(deltas=["x ", "y "], delay=0.05)
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        user, s, room_id = await private_room(server)
        sent = [(await s.ok("send_message", {"room_id": room_id, "content": t}))["message"]
                for t in ("one", "two", "three")]
        done = await s.wait("assistant_done", count=3, timeout=10)
        assert [d["message"]["reply_to"] for d in done] == [m["message_id"] for m in sent]
        assert all(d["finish_reason"] == "stop" for d in done)
    finally:
        await server.close()


async def test_the_user_cap_makes_room_replies_wait_not_fail(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=["p ", "q ", "r "], delay=0.1)
    server = await start_parlour(
        make_settings(limits__max_concurrent_replies=1), providers={"scripted": provider}
    )
    try:
        user = await server.signup()
        s = await server.socket(user)
        rooms = [(await s.ok("create_room", {"model": "scripted:fixed"}))["room"]["room_id"]
                 for _ in range(2)]
        for room_id in rooms:
            await s.ok("send_message", {"room_id": room_id, "content": "hi"})
        await s.wait("assistant_done", count=2, timeout=10)
        order = [(e, d["room_id"]) for e, d in s.events
                 if e in ("assistant_started", "assistant_done")]
        # The second room's reply starts only once the first one is done.
        assert order == [("assistant_started", rooms[0]), ("assistant_done", rooms[0]),
                         ("assistant_started", rooms[1]), ("assistant_done", rooms[1])]
    finally:
        await server.close()


async def test_first_delta_at_once_later_ones_coalesced(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=["first ", "second ", "third "], delay=0.1)
    server = await start_parlour(
        make_settings(assistant__delta_interval_ms=60_000), providers={"scripted": provider}
    )
    try:
        _, s, room_id = await private_room(server)
        await s.ok("send_message", {"room_id": room_id, "content": "go"})
        (first,) = await s.wait("assistant_delta", timeout=10)
        assert first["seq"] == 1 and first["delta"] == "first "
        (done,) = await s.wait("assistant_done", timeout=10)
        deltas = s.named("assistant_delta")
        # Within the interval the rest is held and sent as one delta when the reply ends.
        assert [d["delta"] for d in deltas] == ["first ", "second third "]
        assert done["message"]["content"] == "first second third "
    finally:
        await server.close()


async def test_tool_call_updates_reach_the_room_and_the_message(make_settings: Any) -> None:
    long_result = "r" * 3000

    async def source(request: ReplyRequest) -> AsyncIterator[LoopEvent]:
        yield TextDelta("Let me look. ")
        yield ToolCallUpdate("c1", "calendar_list_events", '{"query": "x"}', "running")
        yield StreamEnd(TokenUsage(10, 5), "tool_calls")
        yield ToolCallUpdate("c1", "calendar_list_events", '{"query": "x"}', "done", long_result)
        yield ToolCallUpdate("c2", "notion_search", '{"query": "y"}', "running")
        yield ToolCallUpdate("c2", "notion_search", '{"query": "y"}', "error", "HTTP 502")
        yield TextDelta("You have one meeting.")
        yield StreamEnd(TokenUsage(20, 6), "stop")

    server = await start_parlour(make_settings(), providers=SCRIPTED, reply_source=source)
    try:
        user, s, room_id = await private_room(server, model="scripted:fixed")
        await s.ok("send_message", {"room_id": room_id, "content": "what's on?"})
        (done,) = await s.wait("assistant_done", timeout=10)
        calls = s.named("assistant_tool_call")
        assert [(c["call_id"], c["status"]) for c in calls] == [
            ("c1", "running"), ("c1", "done"), ("c2", "running"), ("c2", "error")]
        assert all(c["room_id"] == room_id and c["message_id"] == done["message_id"]
                   for c in calls)
        assert "result" not in calls[0] and calls[1]["result"] == "r" * 2000
        assert calls[1]["arguments"] == '{"query": "x"}'
        # The text before the call was sent before the call.
        names = [e for e, _ in s.events if e in ("assistant_delta", "assistant_tool_call")]
        assert names[0] == "assistant_delta"
        message = done["message"]
        assert message["content"] == "Let me look. You have one meeting."
        assert message["usage"]["input_tokens"] == 30 and message["usage"]["output_tokens"] == 11
        expected = [
            {"call_id": "c1", "name": "calendar_list_events", "arguments": '{"query": "x"}',
             "status": "done", "result": "r" * 2000},
            {"call_id": "c2", "name": "notion_search", "arguments": '{"query": "y"}',
             "status": "error", "result": "HTTP 502"},
        ]
        assert message["tool_calls"] == expected
        assert (await stored(server, user, room_id))[-1]["tool_calls"] == expected
    finally:
        await server.close()


async def test_stop_during_a_tool_call_cancels_it_within_a_second(make_settings: Any) -> None:
    cancelled = asyncio.Event()

    async def source(request: ReplyRequest) -> AsyncIterator[LoopEvent]:
        yield TextDelta("Checking. ")
        yield ToolCallUpdate("c1", "slow_tool", "{}", "running")
        try:
            await asyncio.sleep(60)  # the tool, running
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield StreamEnd(TokenUsage(1, 1), "stop")

    server = await start_parlour(make_settings(), providers=SCRIPTED, reply_source=source)
    try:
        user, s, room_id = await private_room(server, model="scripted:fixed")
        await s.ok("send_message", {"room_id": room_id, "content": "go"})
        await s.wait("assistant_tool_call", timeout=10)
        await s.ok("stop_generation", {"room_id": room_id})
        (done,) = await s.wait("assistant_done", timeout=1.0)
        assert cancelled.is_set()
        assert done["finish_reason"] == "cancelled"
        assert done["message"]["tool_calls"] == [{
            "call_id": "c1", "name": "slow_tool", "arguments": "{}", "status": "error",
            "result": "cancelled"}]
        engine_is_idle(server, user.user_id, room_id)
    finally:
        await server.close()


async def test_a_silent_source_ends_the_reply_instead_of_holding_the_room(
    make_settings: Any,
) -> None:
    async def source(request: ReplyRequest) -> AsyncIterator[LoopEvent]:
        if request.reply_to.content == "hang":
            yield TextDelta("partial ")
            await asyncio.sleep(60)  # a stuck model
        yield TextDelta("fine")
        yield StreamEnd(TokenUsage(1, 1), "stop")

    server = await start_parlour(
        make_settings(llm__request_timeout_seconds=0.5), providers=SCRIPTED, reply_source=source
    )
    try:
        _, s, room_id = await private_room(server)
        await s.ok("send_message", {"room_id": room_id, "content": "hang"})
        await s.ok("send_message", {"room_id": room_id, "content": "next"})
        done = await s.wait("assistant_done", count=2, timeout=10)
        assert done[0]["finish_reason"] == "error" and done[0]["message"]["content"] == "partial "
        (err,) = await s.wait("error")
        assert err["code"] == "provider_error" and "sent nothing for 0.5 s" in err["message"]
        assert done[1]["finish_reason"] == "stop" and done[1]["message"]["content"] == "fine"
    finally:
        await server.close()
