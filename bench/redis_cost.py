"""What the Redis hop costs a node in CPU, per message: the floor of the two-node ratio.

    python -m bench.redis_cost <redis url>

One process, redis-py as the nodes use it (python-socketio's AsyncRedisManager), a
message_received publication of the size the cross-node run sends: the CPU of
publishing it (every node with Redis pays it per emit), and of receiving it through a
pub/sub subscription (every node pays it per emit of any node, its own echo included,
even when it then drops it unparsed). Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from redis.asyncio import Redis

N = 3000
MESSAGE = orjson.dumps({
    "method": "emit", "host_id": "0" * 32, "event": "message_received",
    "data": [{"message": {
        "message_id": "6" * 24, "room_id": "6" * 24, "seq": 12345, "role": "user",
        "author": {"user_id": "6" * 24, "name": "bench12", "kind": "user"},
        "content": "m12345 the quick brown fox jumps over the lazy dog",
        "created_at": "2026-11-26T10:00:00.000000Z", "input": "text", "file_ids": [],
        "reply_to": None, "client_msg_id": None}}],
    "binary": False, "namespace": "/assistant/realtime", "room": "room:" + "6" * 24,
    "skip_sid": None, "callback": None})


async def main(url: str) -> dict[str, float]:
    client = Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        for _ in range(200):  # warm up
            await client.publish("bench-cost-nobody", MESSAGE)
        t0 = time.process_time()
        for _ in range(N):
            await client.publish("bench-cost-nobody", MESSAGE)
        publish = (time.process_time() - t0) / N
        await pubsub.subscribe("bench-cost")
        received = 0

        async def listen() -> None:
            nonlocal received
            async for message in pubsub.listen():
                if message["type"] == "message":
                    received += 1
                    if received == N:
                        return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.2)
        t0 = time.process_time()
        for _ in range(N):
            await client.publish("bench-cost", MESSAGE)
        await asyncio.wait_for(listener, 60)
        both = (time.process_time() - t0) / N
    finally:
        await pubsub.aclose()
        await client.aclose()
    return {"publish_us": publish * 1e6, "receive_us": (both - publish) * 1e6,
            "bytes": len(MESSAGE)}


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(orjson.dumps(asyncio.run(main(sys.argv[1]))).decode(), flush=True)
