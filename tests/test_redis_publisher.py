"""The Redis manager's publisher: emit order, pipelines, and its bound on what waits."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from namespaces.server import ParlourRedisManager


class GatedRedis:
    """A stand-in Redis client whose round trips wait for `gate`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.round_trips: list[list[bytes]] = []

    async def publish(self, channel: str, payload: bytes) -> int:
        await self.gate.wait()
        self.round_trips.append([payload])
        return 1

    def pipeline(self, transaction: bool = True) -> Any:
        redis = self
        queued: list[bytes] = []

        class Pipe:
            def publish(self, channel: str, payload: bytes) -> None:
                queued.append(payload)

            async def execute(self) -> list[int]:
                await redis.gate.wait()
                redis.round_trips.append(list(queued))
                return [1] * len(queued)

        return Pipe()


async def test_emits_do_not_wait_for_redis_until_the_queue_is_full() -> None:
    manager = ParlourRedisManager("redis://127.0.0.1:1/0", channel="parlour")
    redis = GatedRedis()
    manager.redis, manager.connected, manager.QUEUED = redis, True, 3

    def message(n: int) -> dict[str, Any]:
        return {"method": "emit", "host_id": manager.host_id, "event": "e", "data": [n]}

    for n in range(4):  # the first goes out at once; three wait: not over the bound
        await asyncio.wait_for(manager._publish(message(n)), 0.5)
    over = asyncio.create_task(manager._publish(message(4)))
    await asyncio.sleep(0.05)
    assert not over.done()  # the fifth waits for Redis
    redis.gate.set()
    await asyncio.wait_for(over, 1)
    # one round trip for the first, one pipeline for all that queued behind it
    assert [len(batch) for batch in redis.round_trips] == [1, 4]
    sent = [orjson.loads(p) for batch in redis.round_trips for p in batch]
    assert [m["data"] for m in sent] == [[n] for n in range(5)]
    # method and host_id first: how a node knows its own publications unparsed
    assert redis.round_trips[0][0].startswith(manager._own[0])
