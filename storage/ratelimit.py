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
    """Single-process limiter; the key count is bounded so memory cannot grow without end."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._hits: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys

    def _window(self, window_seconds: int) -> int:
        return int(time.time() // window_seconds)

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        window = self._window(window_seconds)
        start, count = self._hits.get(key, (window, 0))
        if start != window:
            count = 0
        if len(self._hits) >= self._max_keys and key not in self._hits:
            self._evict(window_seconds)
        self._hits[key] = (window, count + 1)
        return count + 1 <= limit

    async def count(self, key: str, window_seconds: int) -> int:
        start, count = self._hits.get(key, (0, 0))
        return count if start == self._window(window_seconds) else 0

    async def add(self, key: str, amount: int, window_seconds: int) -> int:
        total = await self.count(key, window_seconds) + amount
        if len(self._hits) >= self._max_keys and key not in self._hits:
            self._evict(window_seconds)
        self._hits[key] = (self._window(window_seconds), total)
        return total

    async def reset(self, key: str, window_seconds: int) -> None:
        self._hits.pop(key, None)

    def _evict(self, window_seconds: int) -> None:
        current = self._window(window_seconds)
        for key in [k for k, (w, _) in self._hits.items() if w != current]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            self._hits.clear()


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
