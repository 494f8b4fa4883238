"""Why Parlour sends no findAndModify: its cost by how many documents the collection holds.

    python -m bench.find_and_modify [--sizes 0,10000,30000] [mongodb uri]

Updates one message by `_id` (a reply's checkpoint and its final state, as
`MessageStore.update` writes them) in a `messages` collection holding N other messages:
once with `find_one_and_update` and once with `storage.mongo.update_and_read` (`update_one`,
then `find_one`), and deletes one by `_id` with `find_one_and_delete` and with
`delete_and_read`. SecantusDB, the embedded default, rewrites a findAndModify's document
under a filter no index serves, so that one grows with N; the pairs should not. Without
a URI it starts SecantusDB on disk, as `parlour serve` does by default. Prints one JSON
line of median milliseconds per size.
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

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from app.ids import new_id
from bench.insert_latency import message
from storage.embedded_mongo import EmbeddedMongo
from storage.mongo import delete_and_read, update_and_read

N = 12
BATCH = 1000


async def timed(call: Callable[[int], Awaitable[Any]]) -> float:
    times = []
    for i in range(N):
        started = time.perf_counter()
        if await call(i) is None:
            raise RuntimeError("the document was not found")
        times.append(time.perf_counter() - started)
    return round(statistics.median(times[2:]) * 1000, 3)


async def one_size(coll: AsyncCollection[dict[str, Any]], ids: list[str]) -> dict[str, float]:
    fields = {"content": "an answer", "status": "complete"}
    return {
        "find_one_and_update_ms": await timed(lambda i: coll.find_one_and_update(
            {"_id": ids[i]}, {"$set": fields}, return_document=ReturnDocument.AFTER)),
        "update_and_read_ms": await timed(
            lambda i: update_and_read(coll, {"_id": ids[i]}, {"$set": fields})),
        "find_one_and_delete_ms": await timed(
            lambda i: coll.find_one_and_delete({"_id": ids[i]})),
        "delete_and_read_ms": await timed(
            lambda i: delete_and_read(coll, {"_id": ids[N + i]})),
    }


async def measure(uri: str, sizes: list[int]) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client[f"find_and_modify_{new_id()[:8]}"]
    coll = db["messages"]
    out: list[dict[str, Any]] = []
    stored = 0
    try:
        for size in sizes:
            while stored < size:
                count = min(BATCH, size - stored)
                await coll.insert_many([message(stored + i + 1) for i in range(count)])
                stored += count
            targets = [message(0) for _ in range(2 * N)]
            await coll.insert_many(targets)
            out.append({"stored": size, **await one_size(coll, [d["_id"] for d in targets])})
        await client.drop_database(db.name)
        return out
    finally:
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,10000,30000")
    parser.add_argument("uri", nargs="?")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.uri:
        rows = await measure(args.uri, sizes)
    else:
        with tempfile.TemporaryDirectory(prefix="find-and-modify-") as tmp:
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
