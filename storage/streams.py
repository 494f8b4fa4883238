"""The reply in progress per room, readable by every node (late joiners, stop anywhere)."""

from __future__ import annotations

from typing import Any, Protocol

from redis.asyncio import Redis

TTL_SECONDS = 3600


class StreamLog(Protocol):
    """What has been sent of each room's active reply: message id, last delta seq, text."""

    async def start(self, room_id: str, message_id: str, node_id: str) -> None:
        """A reply began on `node_id`."""

    async def append(self, room_id: str, message_id: str, seq: int, delta: str) -> None:
        """Record a delta before it is broadcast."""

    async def finish(self, room_id: str, message_id: str) -> None:
        """The reply ended."""

    async def get(self, room_id: str) -> dict[str, Any] | None:
        """`{message_id, seq, content, node_id}` of the room's active reply."""


class MemoryStreamLog:
    """Single node: the engine's own state is the log."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Any]] = {}

    async def start(self, room_id: str, message_id: str, node_id: str) -> None:
        self._rooms[room_id] = {"message_id": message_id, "seq": 0, "content": "",
                                "node_id": node_id}

    async def append(self, room_id: str, message_id: str, seq: int, delta: str) -> None:
        entry = self._rooms.get(room_id)
        if entry is not None and entry["message_id"] == message_id:
            entry["seq"] = seq
            entry["content"] += delta

    async def finish(self, room_id: str, message_id: str) -> None:
        entry = self._rooms.get(room_id)
        if entry is not None and entry["message_id"] == message_id:
            del self._rooms[room_id]

    async def get(self, room_id: str) -> dict[str, Any] | None:
        entry = self._rooms.get(room_id)
        return dict(entry) if entry is not None else None


_FINISH = """
if redis.call('HGET', KEYS[1], 'message_id') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 0
"""


class RedisStreamLog:
    """A hash (message id, seq, node) and a string (text) per room, with a TTL."""

    def __init__(self, redis: Redis, prefix: str = "parlour:stream:") -> None:
        self._redis = redis
        self._prefix = prefix

    def _keys(self, room_id: str) -> tuple[str, str]:
        return f"{self._prefix}{room_id}", f"{self._prefix}{room_id}:text"

    async def start(self, room_id: str, message_id: str, node_id: str) -> None:
        meta, text = self._keys(room_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(meta, text)
            pipe.hset(meta, mapping={"message_id": message_id, "seq": 0, "node_id": node_id})
            pipe.set(text, "")
            pipe.expire(meta, TTL_SECONDS)
            pipe.expire(text, TTL_SECONDS)
            await pipe.execute()

    async def append(self, room_id: str, message_id: str, seq: int, delta: str) -> None:
        meta, text = self._keys(room_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(meta, "seq", seq)
            pipe.append(text, delta)
            await pipe.execute()

    async def finish(self, room_id: str, message_id: str) -> None:
        meta, text = self._keys(room_id)
        await self._redis.eval(_FINISH, 2, meta, text, message_id)

    async def get(self, room_id: str) -> dict[str, Any] | None:
        meta, text = self._keys(room_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta)
            pipe.get(text)
            fields, content = await pipe.execute()
        if not fields:
            return None
        decoded = {k.decode(): v.decode() for k, v in fields.items()}
        return {"message_id": decoded["message_id"], "seq": int(decoded["seq"]),
                "content": (content or b"").decode(), "node_id": decoded.get("node_id", "")}
