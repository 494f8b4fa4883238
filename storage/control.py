"""Commands between nodes (stop a reply, make a user's sockets leave a room)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

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
    """Redis pub/sub; one listener task per node."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._handlers: list[Handler] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, command: dict[str, Any]) -> None:
        await self._redis.publish(CHANNEL, orjson.dumps(command))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="control-bus")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
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
