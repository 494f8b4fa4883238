"""Fixed-window counters for rate limits: in-process, or shared through Redis."""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    """Counts hits per key in a window of time."""

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit; False if the key is over `limit` in the current window."""

    async def count(self, key: str, window_seconds: int) -> int:
        """Hits counted for `key` in the current window."""

    async def add(self, key: str, amount: int, window_seconds: int) -> int:
        """Add `amount` to the key's count in the current window; the new count."""

    async def reset(self, key: str, window_seconds: int) -> None:
        """Forget a key's hits in the current window."""


class MemoryRateLimiter:
    """Single-process limiter; the key count is bounded so memory cannot grow without end.

    Each key remembers its own window length, so making room only drops keys whose own
    window is over: a flood of per-minute keys never wipes a daily counter. When every
    key is still live, the shortest windows go first (a minute's count matters less than
    a day's token budget).
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        # key -> (window length in seconds, window index, count)
        self._hits: dict[str, tuple[int, int, int]] = {}
        self._max_keys = max_keys

    @staticmethod
    def _window(window_seconds: int) -> int:
        return int(time.time() // window_seconds)

    def _current(self, key: str, window_seconds: int) -> int:
        entry = self._hits.get(key)
        if entry is None or entry[0] != window_seconds:
            return 0
        return entry[2] if entry[1] == self._window(window_seconds) else 0

    def _store(self, key: str, window_seconds: int, count: int) -> None:
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._evict()
        self._hits[key] = (window_seconds, self._window(window_seconds), count)

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        count = self._current(key, window_seconds) + 1
        self._store(key, window_seconds, count)
        return count <= limit

    async def count(self, key: str, window_seconds: int) -> int:
        return self._current(key, window_seconds)

    async def add(self, key: str, amount: int, window_seconds: int) -> int:
        total = self._current(key, window_seconds) + amount
        self._store(key, window_seconds, total)
        return total

    async def reset(self, key: str, window_seconds: int) -> None:
        self._hits.pop(key, None)

    def __len__(self) -> int:
        return len(self._hits)

    def _evict(self) -> None:
        expired = [k for k, (length, index, _) in self._hits.items()
                   if index != self._window(length)]
        for key in expired:
            del self._hits[key]
        if len(self._hits) < self._max_keys:
            return
        # Everything is live: drop a tenth, shortest windows first.
        by_window = sorted(self._hits, key=lambda k: self._hits[k][0])
        for key in by_window[: max(1, self._max_keys // 10)]:
            del self._hits[key]


class RedisRateLimiter:
    """Limiter shared by every node: INCR on a per-window key with an expiry."""

    def __init__(self, redis: Redis, prefix: str = "parlour:rl:") -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, key: str, window_seconds: int) -> str:
        return f"{self._prefix}{key}:{int(time.time() // window_seconds)}"

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        rkey = self._key(key, window_seconds)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(rkey)
            pipe.expire(rkey, window_seconds + 1)
            count, _ = await pipe.execute()
        return int(count) <= limit

    async def count(self, key: str, window_seconds: int) -> int:
        value = await self._redis.get(self._key(key, window_seconds))
        return int(value) if value else 0

    async def add(self, key: str, amount: int, window_seconds: int) -> int:
        rkey = self._key(key, window_seconds)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(rkey, amount)
            pipe.expire(rkey, window_seconds + 1)
            total, _ = await pipe.execute()
        return int(total)

    async def reset(self, key: str, window_seconds: int) -> None:
        await self._redis.delete(self._key(key, window_seconds))
