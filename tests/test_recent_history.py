"""A reply's history comes from the node's memory of the room, and is the same history.

The prompt of a reply is the room's turns up to the question. The node keeps the tail
of the rooms it writes to (storage/recent.py), so a reply in an active room reads no
history from MongoDB; what another node wrote in between is read from the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from app.llm.base import ChatMessage
from tests.client import start_parlour
from tests.mongo_commands import Commands, listening
from tests.scripted_provider import ScriptedProvider


@pytest.fixture
def finds() -> Iterator[Commands]:
    """Commands on the messages collection, once counting."""
    with listening(Commands({"messages"}, counting=False)) as listener:
        yield listener


def reads(seen: Counter[tuple[str, str]]) -> int:
    return seen[("find", "messages")] + seen[("aggregate", "messages")]


def turns(prompt: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in prompt if m.role != "system"]


async def test_a_reply_in_an_active_room_reads_no_history_from_the_database(
    make_settings: Any, finds: Commands,
) -> None:
    provider = ScriptedProvider(deltas=["an ", "answer"])
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        user = await server.signup()
        s = await server.socket(user)
        room = (await s.ok("create_room", {"model": "scripted:fixed",
                                           "assistant_mode": "always"}))["room"]
        for i in range(3):
            if i == 2:
                finds.counting = True
            await s.ok("send_message", {"room_id": room["room_id"], "content": f"question {i}"})
            await s.wait("assistant_done", count=i + 1, timeout=10)
        finds.counting = False
        assert reads(finds.take()) == 0
        # The same history the database holds: every turn, the answers with their text.
        assert turns(provider.prompts[-1]) == [
            ("user", "question 0"), ("assistant", "an answer"),
            ("user", "question 1"), ("assistant", "an answer"),
            ("user", "question 2"),
        ]
    finally:
        await server.close()


async def test_what_another_node_wrote_is_in_the_prompt(
    make_settings: Any, redis_url: str,
) -> None:
    provider = ScriptedProvider(deltas=["ok"])
    settings = make_settings(redis__url=redis_url)
    one = await start_parlour(settings, providers={"scripted": provider})
    two = await start_parlour(settings, providers={"scripted": provider})
    try:
        alice, bob = await one.signup("Alice"), await one.signup("Bob")
        a, b = await one.socket(alice), await two.socket(bob)
        room_id = (await a.ok("create_room", {"model": "scripted:fixed",
                                              "assistant_mode": "mention"}))["room"]["room_id"]
        await a.ok("invite", {"room_id": room_id, "email": bob.email})
        await b.wait("room_invited")
        await b.ok("join_room", {"room_id": room_id})
        await a.ok("send_message", {"room_id": room_id, "content": "@assistant first"})
        await a.wait("assistant_done", timeout=10)
        # Node one holds the room's tail now; node two writes two messages to it.
        await b.ok("send_message", {"room_id": room_id, "content": "bob one"})
        await b.ok("send_message", {"room_id": room_id, "content": "bob two"})
        await a.wait("message_received", count=4)  # (first, its answer,) bob's two
        await a.ok("send_message", {"room_id": room_id, "content": "@assistant second"})
        await a.wait("assistant_done", count=2, timeout=10)
        said = [text for _, text in turns(provider.prompts[-1])]
        assert said == ["Alice: @assistant first", "ok", "Bob: bob one", "Bob: bob two",
                        "Alice: @assistant second"]
    finally:
        await asyncio.gather(one.close(), two.close())


async def test_a_retried_question_is_answered_once(make_settings: Any) -> None:
    # The model is asked while the question is stored (app/assistant/early.py); a retry
    # with the same client_msg_id stores nothing, so its early call is dropped unseen.
    provider = ScriptedProvider(deltas=["one ", "answer"], delay=0.05)
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"model": "scripted:fixed",
                                              "assistant_mode": "always"}))["room"]["room_id"]
        await s.ok("send_message", {"room_id": room_id, "content": "warm up"})
        await s.wait("assistant_done", timeout=10)
        first = await s.ok("send_message", {"room_id": room_id, "content": "again?",
                                             "client_msg_id": "c-1"})
        await s.wait("assistant_done", count=2, timeout=10)
        retry = await s.ok("send_message", {"room_id": room_id, "content": "again?",
                                             "client_msg_id": "c-1"})
        assert retry["message"]["message_id"] == first["message"]["message_id"]
        await asyncio.sleep(0.5)
        assert len(s.named("assistant_started")) == 2
        status, page = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
        assert status == 200, page
        assert [(m["role"], m["content"]) for m in page["messages"]] == [
            ("user", "warm up"), ("assistant", "one answer"),
            ("user", "again?"), ("assistant", "one answer"),
        ]
    finally:
        await server.close()
