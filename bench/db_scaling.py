"""Queries the embedded database answers by scanning: their cost by how much is stored.

    python -m bench.db_scaling [--sizes 0,10000,30000] [mongodb uri]

SecantusDB, the embedded default, serves some query shapes from an index and others by
reading every document the filter's first field names (or the whole collection). Each
pair below is a shape Parlour used to send (the first) and the one it sends now (the
second), timed with N messages stored in one room, N / 6 file records in 100 chats and
N / 6 rooms:
- a reply's checkpoint or end written with `find_one_and_update`, against
  `storage.mongo.update_and_read` (`update_one`, then `find_one`); `find_one_and_delete`
  against `delete_and_read`: SecantusDB rewrites a findAndModify's document under a
  filter no index serves, a scan of the whole collection;
- whether a chat has ingested files, asked before replies, with the index named as a
  `hint` (SecantusDB then walks that index whole) against `FileStore.any_ready`;
- the first message a node writes to a room it has not written to: the room's messages
  sorted for the highest seq, against `MessageStore.append` (from the room's `last_seq`
  up), which includes the insert;
- the public room list, in a `rooms` collection without and with its partial index
  (N / 6 rooms, one in a hundred public);
- the latest page of a room on a node that has not written to it (a room opened after a
  restart): a sort with a limit, against `MessageStore.page` (from the last seq down);
- the page after seq 1 (a client catching up): a sort with a limit over the rest of the
  room, against `MessageStore.page(after_seq=...)` (a seq range).
Without a URI it starts SecantusDB on disk, as `parlour serve` does by default. Prints
one JSON line of median milliseconds per size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from app.ids import new_id
from app.models import utcnow
from bench.insert_latency import message
from storage.embedded_mongo import EmbeddedMongo
from storage.files import FileStore
from storage.messages import MessageStore
from storage.mongo import Mongo, delete_and_read, update_and_read
from storage.rooms import RoomStore

N = 8
BATCH = 1000


async def timed(call: Callable[[int], Awaitable[Any]]) -> float:
    times = []
    for i in range(N):
        started = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times[2:]) * 1000, 3)


class Stored:
    """One room's messages and the chats' file records, grown size by size."""

    def __init__(self, mongo: Mongo) -> None:
        self.mongo = mongo
        self.room_id = new_id()
        self.chats = [new_id() for _ in range(100)]
        self.messages = 0
        self.files = 0
        self.rooms = 0

    async def grow(self, size: int) -> None:
        coll = self.mongo.messages
        while self.messages < size:
            count = min(BATCH, size - self.messages)
            await coll.insert_many([{**message(self.messages + i + 1), "room_id": self.room_id}
                                    for i in range(count)])
            self.messages += count
        await self.mongo.rooms.update_one(
            {"_id": self.room_id}, {"$set": {"last_seq": self.messages}}, upsert=True)
        files, now = self.mongo.collection("files"), utcnow()
        rooms = [{"_id": new_id(), "title": "a room", "owner_id": "u1", "room_type": "aisuite",
                  "members": [{"user_id": "u1", "name": "Ann", "role": "owner"}],
                  "member_ids": ["u1"], "visibility": "public" if i % 100 == 0 else "private",
                  "created_at": now, "updated_at": now, "last_activity_at": now}
                 for i in range(self.rooms, size // 6)]
        if rooms:  # into the rooms (with their indexes) and a copy without them
            await self.mongo.rooms.insert_many(rooms)
            await self.mongo.collection("rooms_unindexed").insert_many(rooms)
            self.rooms = size // 6
        while self.files < size // 6:
            count = min(BATCH, size // 6 - self.files)
            await files.insert_many([{
                "_id": new_id(), "chat_id": self.chats[(self.files + i) % 100],
                "scope": "chat", "owner_id": "u1", "status": "ready", "chunks": 1,
                "lease_until": now, "created_at": now} for i in range(count)])
            self.files += count


async def one_size(stored: Stored) -> dict[str, float]:
    mongo, room_id = stored.mongo, stored.room_id
    coll = mongo.messages
    targets = [{**message(1), "room_id": new_id()} for _ in range(2 * N)]
    await coll.insert_many(targets)
    ids = [doc["_id"] for doc in targets]
    fields = {"content": "an answer", "status": "complete"}
    chat = stored.chats[0]
    ready = {"chat_id": chat, "scope": "chat", "status": "ready", "chunks": {"$gt": 0}}

    stores: list[MessageStore] = []

    async def first_append(_: int) -> None:
        stores.append(MessageStore(mongo))  # a new store: the room is new to it
        doc = {**message(0), "room_id": room_id}
        del doc["seq"]  # the store gives it
        await stores[-1].append(doc)

    result = {
        "find_one_and_update_ms": await timed(lambda i: coll.find_one_and_update(
            {"_id": ids[i]}, {"$set": fields}, return_document=ReturnDocument.AFTER)),
        "update_and_read_ms": await timed(
            lambda i: update_and_read(coll, {"_id": ids[i]}, {"$set": fields})),
        "find_one_and_delete_ms": await timed(
            lambda i: coll.find_one_and_delete({"_id": ids[i]})),
        "delete_and_read_ms": await timed(
            lambda i: delete_and_read(coll, {"_id": ids[N + i]})),
        "any_ready_hinted_ms": await timed(lambda _: mongo.collection("files").find_one(
            ready, {"_id": 1}, hint=[("chat_id", ASCENDING), ("created_at", DESCENDING)])),
        "any_ready_ms": await timed(lambda _: FileStore(mongo).any_ready(chat_id=chat)),
        "last_seq_sorted_ms": await timed(lambda _: coll.find_one(
            {"room_id": room_id}, projection={"seq": 1}, sort=[("seq", DESCENDING)])),
        "first_append_ms": await timed(first_append),
        "public_rooms_unindexed_ms": await timed(lambda _: mongo.collection(
            "rooms_unindexed").find({"visibility": "public"}).sort(
                [("last_activity_at", DESCENDING), ("_id", DESCENDING)]).limit(21).to_list()),
        "public_rooms_ms": await timed(lambda _: RoomStore(mongo).list_public(None, 20)),
        "latest_page_sorted_ms": await timed(lambda _: coll.find(
            {"room_id": room_id}).sort("seq", DESCENDING).limit(50).to_list()),
        "latest_page_ms": await timed(  # a new store: a node that has not written the room
            lambda _: MessageStore(mongo).page(room_id, limit=50)),
        "page_after_sorted_ms": await timed(lambda _: coll.find(
            {"room_id": room_id, "seq": {"$gt": 1}}).sort("seq", ASCENDING).limit(50).to_list()),
        "page_after_ms": await timed(
            lambda _: MessageStore(mongo).page(room_id, after_seq=1, limit=50)),
    }
    for store in stores:
        await store.close()
    return result


async def measure(uri: str, sizes: list[int]) -> list[dict[str, Any]]:
    mongo = Mongo(uri, f"db_scaling_{new_id()[:8]}")
    try:
        await mongo.ensure_indexes()
        stored = Stored(mongo)
        out: list[dict[str, Any]] = []
        for size in sizes:
            await stored.grow(size)
            out.append({"stored_messages": size, "stored_files": size // 6,
                        **await one_size(stored)})
            stored.messages = await mongo.messages.count_documents({"room_id": stored.room_id})
        await mongo.client.drop_database(mongo.db.name)
        return out
    finally:
        await mongo.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,10000,30000")
    parser.add_argument("uri", nargs="?")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.uri:
        rows = await measure(args.uri, sizes)
    else:
        with tempfile.TemporaryDirectory(prefix="db-scaling-") as tmp:
            daemon = EmbeddedMongo(tmp)
            uri = await daemon.start()
            try:
                rows = await measure(uri, sizes)
            finally:
                await daemon.stop()
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    asyncio.run(main())
