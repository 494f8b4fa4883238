"""One reply in progress: coalesced deltas, checkpoints, the snapshot late joiners get."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

DeltaSink = Callable[[int, str], Awaitable[None]]
CheckpointSink = Callable[[str], Awaitable[None]]


@dataclass
class ActiveReply:
    """A reply being generated. `content` and `seq` are what clients have been sent."""

    room_id: str
    message_id: str
    reply_to: str
    model: str
    requested_by: str
    message_seq: int
    seq: int = 0
    content: str = ""
    pending: list[str] = field(default_factory=list)
    stop_requested: bool = False
    started_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        """`active_stream` of join_room: everything sent so far, and its last delta seq."""
        return {"message_id": self.message_id, "seq": self.seq, "content": self.content}


class DeltaCoalescer:
    """Sends the text received since the last send, at most once per interval.

    Deltas are never accumulated text: each send carries only what is new. The
    checkpoint writes the text so far to storage every `checkpoint_seconds`.
    """

    def __init__(
        self,
        reply: ActiveReply,
        send: DeltaSink,
        checkpoint: CheckpointSink,
        interval_ms: int,
        checkpoint_seconds: float,
    ) -> None:
        self._reply = reply
        self._send = send
        self._checkpoint = checkpoint
        self._interval = interval_ms / 1000
        self._checkpoint_every = checkpoint_seconds
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._last_checkpoint = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"deltas-{self._reply.room_id}")

    def push(self, text: str) -> None:
        """Queue new text (called for every provider delta)."""
        if not text:
            return
        if self._reply.first_token_at is None:
            self._reply.first_token_at = time.perf_counter()
        self._reply.pending.append(text)
        self._wake.set()

    async def flush(self) -> None:
        """Send whatever is pending now."""
        reply = self._reply
        if not reply.pending:
            return
        delta = "".join(reply.pending)
        reply.pending.clear()
        reply.seq += 1
        reply.content += delta
        await self._send(reply.seq, delta)

    async def _run(self) -> None:
        # Never cancelled mid-send: close() sets a flag and wakes the loop instead.
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            if time.monotonic() - self._last_checkpoint >= self._checkpoint_every:
                self._last_checkpoint = time.monotonic()
                await self._checkpoint(self._reply.content)
            if self._interval and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), self._interval)

    async def close(self) -> None:
        """Stop the timer and send the rest."""
        self._closing = True
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
