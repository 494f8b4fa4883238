"""Replies in progress, per message, readable by every node (late joiners, stop anywhere).

Each reply has its own entry (message id, room, last delta seq, text so far, node), so
two replies in one room on two nodes never mix their text. A room's index lists the
replies running in it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from redis.asyncio import Redis

# An entry not refreshed for this long is dropped (its node died): appends and the
# reply's checkpoints refresh it.
TTL_SECONDS = 300


class StreamLog(Protocol):
    """What has been sent of each active reply: message id, last delta seq, text."""

    async def start(self, room_id: str, message_id: str, node_id: str) -> None:
        """A reply began on `node_id`."""

    async def append(self, message_id: str, seq: int, delta: str) -> None:
        """Record a delta before it is broadcast."""

    async def touch(self, message_id: str) -> None:
        """The reply is alive (keeps its entry from expiring during long silences)."""

    async def finish(self, room_id: str, message_id: str) -> None:
        """The reply ended (idempotent)."""

    async def active(self, room_id: str) -> list[dict[str, Any]]:
        """`{message_id, seq, content, node_id}` of the room's replies, oldest first."""


class MemoryStreamLog:
    """Single node: entries in a dict."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}

    async def start(self, room_id: str, message_id: str, node_id: str) -> None:
        self._entries[message_id] = {"message_id": message_id, "room_id": room_id, "seq": 0,
                                     "content": "", "node_id": node_id,
                                     "started": time.monotonic()}

    async def append(self, message_id: str, seq: int, delta: str) -> None:
        entry = self._entries.get(message_id)
        if entry is not None:
            entry["seq"] = seq
            entry["content"] += delta

    async def touch(self, message_id: str) -> None:
        return None

    async def finish(self, room_id: str, message_id: str) -> None:
        self._entries.pop(message_id, None)

    async def active(self, room_id: str) -> list[dict[str, Any]]:
        found = [e for e in self._entries.values() if e["room_id"] == room_id]
        found.sort(key=lambda e: e["started"])
        return [{k: e[k] for k in ("message_id", "seq", "content", "node_id")} for e in found]


class RedisStreamLog:
    """Per reply a hash (room, seq, node) and a string (text); per room a sorted index."""

    def __init__(self, redis: Redis, prefix: str = "parlour:stream:") -> None:
        self._redis = redis
        self._prefix = prefix

    def _keys(self, message_id: str) -> tuple[str, str]:
        return f"{self._prefix}msg:{message_id}", f"{self._prefix}msg:{message_id}:text"

    def _room(self, room_id: str) -> str:
        return f"{self._prefix}room:{room_id}"

    async def start(self, room_id: str, message_id: str, node_id: str) -> None:
        meta, text = self._keys(message_id)
        room = self._room(room_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(meta, mapping={"room_id": room_id, "seq": 0, "node_id": node_id})
            pipe.set(text, "")
            pipe.zadd(room, {message_id: time.time()})
            for key in (meta, text, room):
                pipe.expire(key, TTL_SECONDS)
            await pipe.execute()

    async def append(self, message_id: str, seq: int, delta: str) -> None:
        meta, text = self._keys(message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(meta, "seq", seq)
            pipe.append(text, delta)
            pipe.expire(meta, TTL_SECONDS)
            pipe.expire(text, TTL_SECONDS)
            await pipe.execute()

    async def touch(self, message_id: str) -> None:
        meta, text = self._keys(message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.expire(meta, TTL_SECONDS)
            pipe.expire(text, TTL_SECONDS)
            await pipe.execute()

    async def finish(self, room_id: str, message_id: str) -> None:
        meta, text = self._keys(message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(meta, text)
            pipe.zrem(self._room(room_id), message_id)
            await pipe.execute()

    async def active(self, room_id: str) -> list[dict[str, Any]]:
        room = self._room(room_id)
        ids = [m.decode() for m in await self._redis.zrange(room, 0, -1)
               if isinstance(m, bytes)]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for message_id in ids:
                meta, text = self._keys(message_id)
                pipe.hgetall(meta)
                pipe.get(text)
            rows = await pipe.execute()
        found: list[dict[str, Any]] = []
        gone: list[str] = []
        for i, message_id in enumerate(ids):
            fields, content = rows[2 * i], rows[2 * i + 1]
            if not fields:
                gone.append(message_id)  # expired: its node died
                continue
            decoded = {k.decode(): v.decode() for k, v in fields.items()}
            found.append({"message_id": message_id, "seq": int(decoded["seq"]),
                          "content": (content or b"").decode(),
                          "node_id": decoded.get("node_id", "")})
        if gone:
            await self._redis.zrem(room, *gone)
        return found
