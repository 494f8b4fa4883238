"""What storing one message costs in latency: the floor under time to first token.

    python -m bench.insert_latency [--preload N] [mongodb uri]

A reply's first delta waits for its question to be stored (the room hears of a message
once it has its seq), so one insert of one message is on the critical path of every
reply. This times that insert as the seq writer sends it (`insert_many`, ordered, one
document shaped like a user message) into collections with Parlour's `messages`
indexes added one at a time, and a `ping` beside it (the wire round trip alone).
Without a URI it starts SecantusDB on disk, as `parlour serve` does by default.
`--preload N` also times it with all the indexes after N messages are stored (what
`make bench`'s time to first token meets after its persisted-message run).
Prints one JSON line of median milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient

from app.ids import new_id
from app.models import utcnow
from storage.embedded_mongo import EmbeddedMongo

N = 300
WARMUP = 50
# Parlour's indexes on `messages` (storage/mongo.py), in the order they are added here.
INDEXES: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = [
    ("room_id_seq", [("room_id", ASCENDING), ("seq", ASCENDING)], {"unique": True}),
    ("streaming_replies", [("status", ASCENDING), ("checkpoint_at", ASCENDING)],
     {"partialFilterExpression": {"status": "streaming"}}),
]


def message(seq: int) -> dict[str, Any]:
    return {"_id": new_id(), "room_id": "r" * 32, "role": "user",
            "author": {"user_id": "u" * 32, "name": "bench", "kind": "user"},
            "content": f"question {seq}", "file_ids": [], "reply_to": None,
            "status": "complete", "created_at": utcnow(), "seq": seq}


async def timed(call: Any) -> float:
    times = []
    for i in range(N):
        started = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times[WARMUP:]) * 1000


async def measure(uri: str, preload: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client[f"insert_latency_{new_id()[:8]}"]
    try:
        result = {"ping_ms": await timed(lambda _: client.admin.command("ping"))}
        for count in range(len(INDEXES) + 1):
            coll = db[f"messages_{count}"]
            for name, keys, options in INDEXES[:count]:
                await coll.create_index(keys, name=name, **options)
            label = "+".join(["_id", *(name for name, _, _ in INDEXES[:count])])
            result[f"insert_ms[{label}]"] = await timed(
                lambda i, coll=coll: coll.insert_many([message(i + 1)], ordered=True))
        if preload:
            for start in range(N + 1, N + 1 + preload, 500):
                await coll.insert_many([message(seq) for seq in range(
                    start, min(start + 500, N + 1 + preload))], ordered=True)
            result[f"insert_ms[{label}, after {preload} messages]"] = await timed(
                lambda i: coll.insert_many([message(N + preload + i + 1)], ordered=True))
        await client.drop_database(db.name)
        return {k: round(v, 3) for k, v in result.items()}
    finally:
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preload", type=int, default=0)
    parser.add_argument("uri", nargs="?")
    args = parser.parse_args()
    if args.uri:
        print(await measure(args.uri, args.preload))
        return
    with tempfile.TemporaryDirectory(prefix="insert-latency-") as tmp:
        daemon = EmbeddedMongo(tmp)
        uri = await daemon.start()
        try:
            print(await measure(uri, args.preload))
        finally:
            await daemon.stop()


if __name__ == "__main__":
    asyncio.run(main())
