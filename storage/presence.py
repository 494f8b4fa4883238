"""Who is online in each room: sockets counted per user, in-process or in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from redis.asyncio import Redis

from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)


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

    async def start(self) -> None:
        """Begin (e.g. announce this node)."""

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

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._rooms.clear()


# Members of a user's set are "node_id|sid". A node keeps a heartbeat key alive; sids of
# a node whose key expired (it died without closing its sockets) are pruned on the way.
_PRUNE = """
local function prune(key, prefix)
  for _, m in ipairs(redis.call('SMEMBERS', key)) do
    local node = string.match(m, '^(.-)|')
    if node and redis.call('EXISTS', prefix .. node) == 0 then
      redis.call('SREM', key, m)
    end
  end
end
"""

_ADD = _PRUNE + """
prune(KEYS[1], ARGV[3])
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

_ONLINE = _PRUNE + """
local online = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = KEYS[1] .. ':' .. user
  prune(key, ARGV[1])
  if redis.call('SCARD', key) == 0 then
    redis.call('SREM', KEYS[1], user)
  else
    table.insert(online, user)
  end
end
return online
"""

HEARTBEAT_SECONDS = 10


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisPresence:
    """Presence shared by every node; each change is one atomic Lua script.

    The scripts touch keys they derive (one Redis, not Redis Cluster).
    """

    def __init__(
        self, redis: Redis, node_id: str, prefix: str = "parlour:presence:"
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._prefix = prefix
        self._nodes = "parlour:node:"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Announce this node and keep its heartbeat alive."""
        await self._beat()
        self._task = asyncio.create_task(self._beat_forever(), name="presence-heartbeat")

    async def _beat(self) -> None:
        await self._redis.set(self._nodes + self._node_id, "1", ex=3 * HEARTBEAT_SECONDS)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._beat()
            except Exception:
                log.warning("presence heartbeat failed", exc_info=True)

    def _keys(self, room_id: str, user_id: str) -> list[str]:
        return [f"{self._prefix}{room_id}:{user_id}", f"{self._prefix}{room_id}"]

    def _member(self, sid: str) -> str:
        return f"{self._node_id}|{sid}"

    async def add(self, room_id: str, user_id: str, sid: str) -> bool:
        keys = self._keys(room_id, user_id)
        result = await self._redis.eval(_ADD, 2, *keys, self._member(sid), user_id, self._nodes)
        return int(result) == 1

    async def remove(self, room_id: str, user_id: str, sid: str) -> bool:
        keys = self._keys(room_id, user_id)
        result = await self._redis.eval(_REMOVE, 2, *keys, self._member(sid), user_id)
        return int(result) == 1

    async def online(self, room_id: str) -> list[str]:
        users = await self._redis.eval(_ONLINE, 1, f"{self._prefix}{room_id}", self._nodes)
        return sorted(_text(u) for u in users)

    async def clear_user(self, room_id: str, user_id: str) -> list[str]:
        key, room_key = self._keys(room_id, user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.smembers(key)
            pipe.delete(key)
            pipe.srem(room_key, user_id)
            members, _, _ = await pipe.execute()
        return sorted(_text(m).split("|", 1)[-1] for m in members)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(Exception):
            await self._redis.delete(self._nodes + self._node_id)
