"""Who is online in each room: sockets counted per user, in-process or in Redis."""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis


class PresenceStore(Protocol):
    """Sockets per (room, user). A user is online while they have one socket in the room."""

    async def add(self, room_id: str, user_id: str, sid: str) -> bool:
        """Record a socket; True if it is the user's first in the room."""

    async def remove(self, room_id: str, user_id: str, sid: str) -> bool:
        """Forget a socket; True if it was the user's last in the room."""

    async def online(self, room_id: str) -> list[str]:
        """The user ids with at least one socket in the room."""

    async def clear_user(self, room_id: str, user_id: str) -> list[str]:
        """Forget every socket of a user in a room; the sids that were there."""

    async def close(self) -> None:
        """Release resources."""


class MemoryPresence:
    """Single-node presence."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, set[str]]] = {}

    async def add(self, room_id: str, user_id: str, sid: str) -> bool:
        sids = self._rooms.setdefault(room_id, {}).setdefault(user_id, set())
        first = not sids
        sids.add(sid)
        return first

    async def remove(self, room_id: str, user_id: str, sid: str) -> bool:
        users = self._rooms.get(room_id, {})
        sids = users.get(user_id)
        if not sids or sid not in sids:
            return False
        sids.discard(sid)
        if sids:
            return False
        del users[user_id]
        if not users:
            self._rooms.pop(room_id, None)
        return True

    async def online(self, room_id: str) -> list[str]:
        return sorted(self._rooms.get(room_id, {}))

    async def clear_user(self, room_id: str, user_id: str) -> list[str]:
        users = self._rooms.get(room_id, {})
        return sorted(users.pop(user_id, set()))

    async def close(self) -> None:
        self._rooms.clear()


_ADD = """
local added = redis.call('SADD', KEYS[1], ARGV[1])
local n = redis.call('SCARD', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[2])
if added == 1 and n == 1 then return 1 end
return 0
"""

_REMOVE = """
local removed = redis.call('SREM', KEYS[1], ARGV[1])
if removed == 0 then return 0 end
if redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class RedisPresence:
    """Presence shared by every node; each change is one atomic Lua script."""

    def __init__(self, redis: Redis, prefix: str = "parlour:presence:") -> None:
        self._redis = redis
        self._prefix = prefix

    def _keys(self, room_id: str, user_id: str) -> list[str]:
        return [f"{self._prefix}{room_id}:{user_id}", f"{self._prefix}{room_id}"]

    async def add(self, room_id: str, user_id: str, sid: str) -> bool:
        keys = self._keys(room_id, user_id)
        result = await self._redis.eval(_ADD, 2, *keys, sid, user_id)
        return int(result) == 1

    async def remove(self, room_id: str, user_id: str, sid: str) -> bool:
        keys = self._keys(room_id, user_id)
        result = await self._redis.eval(_REMOVE, 2, *keys, sid, user_id)
        return int(result) == 1

    async def online(self, room_id: str) -> list[str]:
        members = await self._redis.smembers(f"{self._prefix}{room_id}")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def clear_user(self, room_id: str, user_id: str) -> list[str]:
        key, room_key = self._keys(room_id, user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.smembers(key)
            pipe.delete(key)
            pipe.srem(room_key, user_id)
            sids, _, _ = await pipe.execute()
        return sorted(s.decode() if isinstance(s, bytes) else str(s) for s in sids)

    async def close(self) -> None:
        return None
