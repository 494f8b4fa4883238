"""The message hot path's database round trips, counted with pymongo's command monitoring.

A message costs at most one insert (shared by the messages sent at the same moment) and
a share of one rooms update; the room itself comes from the node's cache. A change that
adds a database round trip per message (a read of the room, a duplicate check, a
transaction) fails here, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import ASCENDING, AsyncMongoClient

from storage.seq import ROOMS_DELAY
from tests.client import Parlour, SocketClient, start_parlour
from tests.mongo_commands import Commands, listening

HOT = {"messages", "rooms", "users", "invites", "refresh_tokens", "usage"}


@pytest.fixture
def commands() -> Iterator[Commands]:
    with listening(Commands(HOT, counting=False)) as listener:
        yield listener


@pytest.fixture
async def counted(make_settings: Any, commands: Commands) -> Any:
    server = await start_parlour(make_settings(limits__messages_per_minute=10_000))
    yield server, commands
    await server.close()


def others(seen: Counter[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Everything but the messages' inserts and the rooms' updates."""
    return {k: n for k, n in seen.items() if k not in {("insert", "messages"),
                                                        ("update", "rooms")}}


async def test_one_message_after_another_costs_one_insert(
    counted: tuple[Parlour, Commands],
) -> None:
    server, commands = counted
    user = await server.signup()
    client = await server.socket(user)
    room_id = (await client.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await client.ok("send_message", {"room_id": room_id, "content": "warm up"})
    await asyncio.sleep(0.2)

    n = 30
    commands.counting = True
    for i in range(n):
        await client.ok("send_message", {"room_id": room_id, "content": f"m{i}",
                                         "client_msg_id": f"c{i}"})
    await asyncio.sleep(0.2)  # the rooms' last_seq follows
    seen = commands.take()
    assert seen[("insert", "messages")] == n, seen
    assert seen[("update", "rooms")] <= n, seen
    # No read of the room, no duplicate check, no transaction per message.
    assert sum(others(seen).values()) <= 2, seen


async def _burst(pairs: list[tuple[SocketClient, str]], tag: str) -> None:
    await asyncio.gather(*(
        client.ok("send_message", {"room_id": room_id, "content": f"{tag}-{i}"})
        for i, (client, room_id) in enumerate(pairs)
    ))


async def test_messages_sent_together_share_their_inserts(
    counted: tuple[Parlour, Commands],
) -> None:
    server, commands = counted
    pairs: list[tuple[SocketClient, str]] = []
    for _ in range(20):
        client = await server.socket(await server.signup())
        data = await client.ok("create_room", {"assistant_mode": "off"})
        pairs.append((client, data["room"]["room_id"]))
    await _burst(pairs, "warm")  # each room read once into the cache
    await asyncio.sleep(0.2)

    commands.counting = True
    for burst in range(3):
        await _burst(pairs, f"b{burst}")
    await asyncio.sleep(0.2)
    seen = commands.take()
    n = 3 * len(pairs)
    assert seen[("insert", "messages")] <= n // 2, seen
    assert seen[("update", "rooms")] <= n // 2, seen
    assert sum(others(seen).values()) <= 2, seen


async def test_rooms_follow_their_messages_once_a_second_under_constant_load(
    counted: tuple[Parlour, Commands],
) -> None:
    """Messages always in flight: the rooms' last_seq is one bulk update a second."""
    server, commands = counted
    pairs: list[tuple[SocketClient, str]] = []
    users = [await server.signup() for _ in range(8)]
    for user in users:
        client = await server.socket(user)
        data = await client.ok("create_room", {"assistant_mode": "off"})
        pairs.append((client, data["room"]["room_id"]))
    await _burst(pairs, "warm")
    await asyncio.sleep(0.2)

    async def keep_sending(client: SocketClient, room_id: str, until: float) -> int:
        sent = 0
        while time.monotonic() < until:
            await client.ok("send_message", {"room_id": room_id, "content": f"m{sent}"})
            sent += 1
        return sent

    commands.counting = True
    started = time.monotonic()
    until = started + 2.5 * ROOMS_DELAY
    sent = sum(await asyncio.gather(*(keep_sending(c, r, until) for c, r in pairs)))
    elapsed = time.monotonic() - started
    seen = commands.take()
    assert seen[("insert", "messages")] <= sent, seen
    assert 1 <= seen[("update", "rooms")] <= elapsed / ROOMS_DELAY + 1, (seen, sent, elapsed)
    # A reader is shown the room's last seq as of its last message.
    client, room_id = pairs[0]
    joined = await client.ok("join_room", {"room_id": room_id})
    last = joined["messages"][-1]["seq"]
    status, chat = await server.request("GET", f"/api/v1/chat/{room_id}", users[0])
    assert status == 200, chat
    assert chat["last_seq"] == last, (chat, last)


async def test_messages_carry_no_index_of_their_own_for_retries(make_settings: Any) -> None:
    """A retry is found by its `_id` (derived from its client_msg_id): the index older
    versions kept of client_msg_ids, one more entry for every message stored, is dropped
    when the server starts on such a database, and retries still return the first."""
    settings = make_settings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo.uri)
    messages = client[settings.mongo.database]["messages"]
    await messages.create_index(
        [("room_id", ASCENDING), ("client_msg_id", ASCENDING)], unique=True,
        partialFilterExpression={"client_msg_id": {"$type": "string"}})
    server = await start_parlour(settings)
    try:
        indexes = await messages.index_information()
        assert sorted(indexes) == ["_id_", "room_id_1_seq_1", "streaming_replies"], indexes
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
        payload = {"room_id": room_id, "content": "once", "client_msg_id": "c-1"}
        first = (await s.ok("send_message", payload))["message"]
        again = await asyncio.gather(*(s.ok("send_message", payload) for _ in range(3)))
        assert {r["message"]["message_id"] for r in again} == {first["message_id"]}
        assert await messages.count_documents({"room_id": room_id}) == 1
    finally:
        await server.close()
        await client.close()
