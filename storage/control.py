"""Commands between nodes (stop a reply, make a user's sockets leave a room)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
CHANNEL = "parlour:control"


class ControlBus(Protocol):
    """Publish a command to every node (this one included)."""

    async def publish(self, command: dict[str, Any]) -> None: ...

    def subscribe(self, handler: Handler) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalControlBus:
    """Single node: commands are handled in-process."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, command: dict[str, Any]) -> None:
        for handler in self._handlers:
            await handler(command)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisControlBus:
    """Redis pub/sub; one listener task per node, reconnecting with backoff when Redis goes."""

    def __init__(
        self, redis: Redis, *, first_retry: float = 0.1, max_retry: float = 5.0
    ) -> None:
        self._redis = redis
        self._handlers: list[Handler] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._delay = first_retry
        self._down_since: float | None = None
        self.connected = False

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, command: dict[str, Any]) -> None:
        await self._redis.publish(CHANNEL, orjson.dumps(command))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="control-bus")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _listen_forever(self) -> None:
        # Commands published while this node is not subscribed are lost (pub/sub): being
        # down is logged, and kept short by retrying with a capped backoff.
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                if self.connected or self._down_since is None:
                    self._down_since = loop.time()
                    self._delay = self._first_retry
                    log.error("control bus: lost Redis (%s); stop and remove_member from "
                              "other nodes are not heard until it is back", exc)
                else:
                    log.warning("control bus: Redis still unreachable after %.0f s (%s)",
                                loop.time() - self._down_since, exc)
                self.connected = False
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self._max_retry)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            if self._down_since is not None:
                log.warning("control bus: reconnected to Redis")
            self._down_since = None
            self.connected = True
            self._ready.set()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                try:
                    command = orjson.loads(message["data"])
                    for handler in self._handlers:
                        await handler(command)
                except Exception:
                    log.exception("control command failed")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
