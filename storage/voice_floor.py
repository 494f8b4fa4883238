"""Who holds a voice room's floor: one turn per room, across every node, with a lease."""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

Holder = dict[str, Any]  # {turn_id, user_id, name, sid, node_id, phase}

_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['turn_id'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_UPDATE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local h = cjson.decode(v)
if h['turn_id'] ~= ARGV[1] then return 0 end
h['phase'] = ARGV[2]
redis.call('SET', KEYS[1], cjson.encode(h), 'KEEPTTL')
return 1
"""
_EXTEND = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['turn_id'] == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def _key(room_id: str) -> str:
    return f"parlour:voice:floor:{room_id}"


class FloorStore(Protocol):
    """The floor of each voice room. A lease: a dead node's turn ends when it runs out."""

    async def take(self, room_id: str, holder: Holder, ttl_seconds: float) -> Holder | None:
        """Take a free floor: None when taken, else the turn that holds it."""
        ...

    async def extend(self, room_id: str, turn_id: str, ttl_seconds: float) -> bool:
        """Renew the lease of `turn_id`; False when it no longer holds the floor."""
        ...

    async def release(self, room_id: str, turn_id: str) -> None:
        """Give the floor back if `turn_id` holds it."""
        ...

    async def set_phase(self, room_id: str, turn_id: str, phase: str) -> None:
        """Record what the turn is at (listening, thinking, speaking) for late joiners."""
        ...

    async def holder(self, room_id: str) -> Holder | None:
        """The turn holding the floor, if any."""
        ...


class MemoryFloor:
    """Single node: a dict with deadlines."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[Holder, float]] = {}

    def _current(self, room_id: str) -> Holder | None:
        entry = self._held.get(room_id)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._held[room_id]
            return None
        return entry[0]

    async def take(self, room_id: str, holder: Holder, ttl_seconds: float) -> Holder | None:
        current = self._current(room_id)
        if current is not None:
            return current
        self._held[room_id] = (holder, time.monotonic() + ttl_seconds)
        return None

    async def extend(self, room_id: str, turn_id: str, ttl_seconds: float) -> bool:
        current = self._current(room_id)
        if current is None or current["turn_id"] != turn_id:
            return False
        self._held[room_id] = (current, time.monotonic() + ttl_seconds)
        return True

    async def release(self, room_id: str, turn_id: str) -> None:
        current = self._current(room_id)
        if current is not None and current["turn_id"] == turn_id:
            del self._held[room_id]

    async def set_phase(self, room_id: str, turn_id: str, phase: str) -> None:
        current = self._current(room_id)
        if current is not None and current["turn_id"] == turn_id:
            current["phase"] = phase

    async def holder(self, room_id: str) -> Holder | None:
        return self._current(room_id)


class RedisFloor:
    """Several nodes: one key per room, SET NX with an expiry; compare-and-delete."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def take(self, room_id: str, holder: Holder, ttl_seconds: float) -> Holder | None:
        ms = max(1, int(ttl_seconds * 1000))
        if await self._redis.set(_key(room_id), orjson.dumps(holder), nx=True, px=ms):
            return None
        current = await self.holder(room_id)
        if current is None:  # released in between: try once more
            if await self._redis.set(_key(room_id), orjson.dumps(holder), nx=True, px=ms):
                return None
            current = await self.holder(room_id)
        return current or {"turn_id": "", "user_id": "", "name": "", "sid": "", "node_id": ""}

    async def extend(self, room_id: str, turn_id: str, ttl_seconds: float) -> bool:
        ms = max(1, int(ttl_seconds * 1000))
        done = await self._redis.eval(_EXTEND, 1, _key(room_id), turn_id, ms)
        return bool(done)

    async def release(self, room_id: str, turn_id: str) -> None:
        await self._redis.eval(_RELEASE, 1, _key(room_id), turn_id)

    async def set_phase(self, room_id: str, turn_id: str, phase: str) -> None:
        await self._redis.eval(_UPDATE, 1, _key(room_id), turn_id, phase)

    async def holder(self, room_id: str) -> Holder | None:
        raw = await self._redis.get(_key(room_id))
        if raw is None:
            return None
        value: Holder = orjson.loads(raw)
        return value


async def floor_state(floor: FloorStore, room_id: str) -> dict[str, Any]:
    """`{speaker, assistant}` of a voice room as `voice_state` says it (for join_room)."""
    holder = await floor.holder(room_id)
    if holder is None:
        return {"speaker": None, "assistant": "idle"}
    phase = str(holder.get("phase") or "listening")
    if phase == "listening":
        return {"speaker": {"user_id": holder.get("user_id"), "name": holder.get("name")},
                "assistant": "listening"}
    return {"speaker": None, "assistant": phase}
