"""The outbound side of one reply: coalesced deltas, tool-call updates, checkpoints.

The reply's task reads its source and pushes text and tool-call updates here; this
sender's own task broadcasts them in order. The first delta goes out at once; later
ones at most once per `interval_ms`, each carrying only the text that is new (never the
text so far). Tool-call updates go out at once, after the text that came before them.
The text so far is checkpointed every `checkpoint_seconds`, deltas or not, so a live
reply is never taken for the reply of a dead node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from app.llm.base import ToolCallUpdate

DeltaSink = Callable[[int, str], Awaitable[None]]
CallSink = Callable[[ToolCallUpdate], Awaitable[None]]
CheckpointSink = Callable[[str], Awaitable[None]]
FailureSink = Callable[[BaseException], None]


class DeltaCoalescer:
    """Sends what the reply produced; `seq` and `content` are what clients have been sent."""

    def __init__(
        self,
        send_delta: DeltaSink,
        send_call: CallSink,
        checkpoint: CheckpointSink,
        on_failure: FailureSink,
        interval_ms: int,
        checkpoint_seconds: float,
    ) -> None:
        self._send_delta = send_delta
        self._send_call = send_call
        self._checkpoint = checkpoint
        self._on_failure = on_failure
        self._interval = interval_ms / 1000
        self._checkpoint_every = checkpoint_seconds
        self._items: list[str | ToolCallUpdate] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._last_sent: float | None = None
        self._first_out = asyncio.Event()  # the first delta went out (or the sender ended)
        self.seq = 0
        self.content = ""
        self.first_token_at: float | None = None

    async def first_out(self) -> None:
        """Wait until the first delta was sent (or the sender ended)."""
        await self._first_out.wait()

    def push(self, text: str) -> None:
        """Queue new text (called for every provider delta)."""
        if not text:
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self._items and isinstance(self._items[-1], str):
            self._items[-1] += text
        else:
            self._items.append(text)
        self._wake.set()

    def push_call(self, update: ToolCallUpdate) -> None:
        """Queue a tool call's progress (sent at once, after the text before it)."""
        self._items.append(update)
        self._wake.set()

    def close(self) -> None:
        """Send what is pending, then stop (`run` returns)."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """The sender loop; a failure is reported to `on_failure`, never raised."""
        try:
            await self._loop()
        except Exception as exc:
            self._on_failure(exc)
        finally:
            self._first_out.set()

    async def _loop(self) -> None:
        next_checkpoint = time.monotonic() + self._checkpoint_every
        while True:
            self._wake.clear()
            now = time.monotonic()
            send_at = self._send_at(now)
            if send_at is not None and send_at <= now:
                await self._flush()
                continue
            if self._closing:
                return
            if now >= next_checkpoint:
                next_checkpoint = now + self._checkpoint_every
                await self._checkpoint(self.content)
                continue
            wait = next_checkpoint - now if send_at is None else min(send_at, next_checkpoint) - now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # no task of its own, unlike wait_for
                    await self._wake.wait()

    def _send_at(self, now: float) -> float | None:
        """When the pending items are due: None when there are none."""
        if not self._items:
            return None
        if self._closing or self._last_sent is None or len(self._items) > 1:
            return now  # closing, the first delta, or a tool call waiting behind text
        if isinstance(self._items[0], ToolCallUpdate):
            return now
        return self._last_sent + self._interval

    async def _flush(self) -> None:
        items, self._items = self._items, []
        for item in items:
            if isinstance(item, str):
                self.seq += 1
                self.content += item
                self._last_sent = time.monotonic()
                await self._send_delta(self.seq, item)
                self._first_out.set()
            else:
                await self._send_call(item)
