"""Local listeners of a room's replies: the plain WebSocket and `POST /run` wait on these."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from app.errors import UNAVAILABLE, AppError
from app.models import Message

MAX_PENDING = 1024


@dataclass(frozen=True)
class ReplyEvent:
    """`started`, `delta`, `tool_call` and `done` of a reply; `failed` when none started.

    `failed` carries the user message id in `reply_to` (no reply message exists).
    """

    kind: Literal["started", "delta", "tool_call", "done", "failed"]
    message_id: str
    reply_to: str = ""
    delta: str = ""
    call: dict[str, Any] | None = None
    message: Message | None = None
    finish_reason: str = ""
    error: AppError | None = None


class Subscription:
    """A bounded queue of one room's reply events; overflowing closes it."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.queue: asyncio.Queue[ReplyEvent] = asyncio.Queue(MAX_PENDING)
        self.overflowed = False

    def put(self, event: ReplyEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self) -> ReplyEvent:
        """The next event; `AppError(unavailable)` if this reader fell too far behind."""
        if self.overflowed and self.queue.empty():
            raise AppError(UNAVAILABLE, "the reader fell behind the reply stream")
        return await self.queue.get()


class ReplyListeners:
    """Subscriptions by room id, on this node."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[Subscription]] = {}

    @contextmanager
    def subscribe(self, room_id: str) -> Iterator[Subscription]:
        sub = Subscription(room_id)
        self._rooms.setdefault(room_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._rooms.get(room_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._rooms[room_id]

    def _put(self, room_id: str, event: ReplyEvent) -> None:
        for sub in self._rooms.get(room_id, ()):
            sub.put(event)

    def started(self, room_id: str, message_id: str, reply_to: str) -> None:
        self._put(room_id, ReplyEvent("started", message_id, reply_to=reply_to))

    def delta(self, room_id: str, message_id: str, delta: str) -> None:
        self._put(room_id, ReplyEvent("delta", message_id, delta=delta))

    def tool_call(self, room_id: str, message_id: str, call: dict[str, Any]) -> None:
        self._put(room_id, ReplyEvent("tool_call", message_id, call=call))

    def done(self, message: Message, finish_reason: str, error: AppError | None) -> None:
        self._put(message.room_id, ReplyEvent(
            "done", message.message_id, reply_to=message.reply_to or "", message=message,
            finish_reason=finish_reason, error=error,
        ))

    def failed(self, room_id: str, reply_to: str, error: AppError) -> None:
        self._put(room_id, ReplyEvent("failed", "", reply_to=reply_to, error=error))
