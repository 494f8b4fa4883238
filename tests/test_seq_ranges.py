"""A room's messages are read as seq ranges, and the answers are the same as a sort's.

SecantusDB, the embedded default, answers a sort with a limit by reading every message
of the room (755 ms for the highest seq of a room of 30,000, 921 ms for the page after
seq 1: `python -m bench.db_scaling`). Seqs are gap-free, so Parlour reads ranges: a node
new to a room looks for its last seq from the room's `last_seq` up (which trails the
messages by up to a second) and reads the latest page as the range below it, and the
page after a seq is that seq + 1 to + limit. These
tests check the seqs and pages users get when the room's `last_seq` trails, when it is
(unexpectedly) ahead, and when a seq is (unexpectedly) missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.ids import new_id
from app.models import utcnow
from storage.messages import MessageStore
from storage.mongo import Mongo


@pytest.fixture
async def mongo(mongo_uri: str) -> AsyncIterator[Mongo]:
    mongo = Mongo(mongo_uri, f"seq_ranges_{new_id()[:8]}")
    await mongo.ensure_indexes()
    yield mongo
    await mongo.client.drop_database(mongo.db.name)
    await mongo.close()


def _doc(room_id: str, content: str) -> dict[str, Any]:
    return {"_id": new_id(), "room_id": room_id, "role": "user", "content": content,
            "author": {"user_id": "u1", "name": "Ann", "kind": "user"},
            "created_at": utcnow(), "status": "complete"}


async def _room_with(mongo: Mongo, n: int) -> str:
    room_id = new_id()
    await mongo.rooms.insert_one({"_id": room_id, "last_seq": 0})
    store = MessageStore(mongo)
    for i in range(n):
        await store.append(_doc(room_id, f"m{i + 1}"))
    await store.close()
    return room_id


@pytest.mark.parametrize("room_last_seq", [0, 12, 30, 45])
async def test_a_node_new_to_a_room_continues_its_seqs(
    mongo: Mongo, room_last_seq: int,
) -> None:
    """Whatever the room's `last_seq` says (trailing, exact, ahead), the next is 31."""
    room_id = await _room_with(mongo, 30)
    await mongo.rooms.update_one({"_id": room_id}, {"$set": {"last_seq": room_last_seq}})
    fresh = MessageStore(mongo)  # another node, or this one after a restart
    try:
        message, created = await fresh.append(_doc(room_id, "next"))
        assert created and message.seq == 31
        following, _ = await fresh.append(_doc(room_id, "and then"))
        assert following.seq == 32
    finally:
        await fresh.close()


async def test_the_page_after_a_seq_is_the_next_messages_in_order(mongo: Mongo) -> None:
    room_id = await _room_with(mongo, 30)
    store = MessageStore(mongo)
    page = await store.page(room_id, after_seq=5, limit=10)
    assert [(m.seq, m.content) for m in page] == [(s, f"m{s}") for s in range(6, 16)]
    assert [m.seq for m in await store.page(room_id, after_seq=25, limit=10)] == list(
        range(26, 31))
    assert await store.page(room_id, after_seq=30, limit=10) == []
    assert [m.seq for m in await store.page(room_id, after_seq=5, before_seq=9)] == [6, 7, 8]


@pytest.mark.parametrize("room_last_seq", [0, 20, 30])
async def test_the_latest_page_on_a_node_new_to_the_room_is_its_last_messages(
    mongo: Mongo, room_last_seq: int,
) -> None:
    room_id = await _room_with(mongo, 30)
    await mongo.rooms.update_one({"_id": room_id}, {"$set": {"last_seq": room_last_seq}})
    page = await MessageStore(mongo).page(room_id, limit=8)
    assert [(m.seq, m.content) for m in page] == [(s, f"m{s}") for s in range(23, 31)]


async def test_a_missing_seq_does_not_hide_the_messages_after_it(mongo: Mongo) -> None:
    room_id = await _room_with(mongo, 30)
    await mongo.messages.delete_one({"room_id": room_id, "seq": 12})  # not expected
    page = await MessageStore(mongo).page(room_id, after_seq=10, limit=5)
    assert [m.seq for m in page] == [11, 13, 14, 15, 16]
