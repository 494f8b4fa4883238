"""The one admission gate: every path that can start a reply reserves its place here first.

Three limits, checked before anything is stored or sent:
- the daily token budget per user (`limits.max_tokens_per_day`) → `rate_limited`;
- per room, replies waiting or running (`assistant.max_queued_replies_per_room` + the
  running one) → `conflict`;
- per user, replies *running* at once (`limits.max_concurrent_replies`). A room reply
  beyond it waits in its room's queue (`wait_to_run`); a stateless call (no room) is
  refused with `rate_limited`.

The check and the reservation are one synchronous step (no await between them), so a
burst of concurrent requests cannot pass a cap together. The counters are this node's.
Usage: `async with gate.admitted(user_id, room_id=None, kind="run") as ticket: ...`, or
`ticket = await gate.admit(...)` and `ticket.release()` in the owner's `finally`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.assistant.policy import Searchable
from app.config import AssistantSettings, LimitsSettings
from app.errors import CONFLICT, DEFAULT_RETRY_AFTER, RATE_LIMITED, AppError, rate_limited
from app.metrics import Metrics
from storage.ratelimit import RateLimiter

DAY = 86_400


def tokens_key(user_id: str) -> str:
    """The rate-limiter key counting a user's tokens of the day."""
    return f"tokens:{user_id}"


class Ticket:
    """One admitted reply: a place in its room (room replies) and, once taken, a running slot.

    `release()` gives back whatever the ticket holds; it is idempotent and synchronous, so
    it is safe in any `finally`.
    """

    __slots__ = ("_gate", "kind", "probe", "released", "room_id", "running", "user_id")

    def __init__(self, gate: AdmissionGate, user_id: str, room_id: str | None, kind: str) -> None:
        self._gate = gate
        # Work for the reply started at admission, while its question is stored (what
        # there is to search); the reply awaits it instead of asking again.
        self.probe: asyncio.Future[Searchable | None] | None = None
        self.user_id = user_id
        self.room_id = room_id
        self.kind = kind
        self.running = False
        self.released = False

    def release(self) -> None:
        """Give back the room place and the running slot (once)."""
        self._gate.release(self)


class AdmissionGate:
    """Reserves room places and running slots; refuses with `conflict` or `rate_limited`."""

    def __init__(
        self,
        limits: LimitsSettings,
        assistant: AssistantSettings,
        limiter: RateLimiter,
        metrics: Metrics,
    ) -> None:
        self._limits = limits
        self._assistant = assistant
        self._limiter = limiter
        self._metrics = metrics
        self._room_pending: dict[str, int] = {}
        self._running: dict[str, int] = {}
        # Room replies waiting for a running slot, per user, first come first served.
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    # -- reserving ------------------------------------------------------------------------

    async def admit(self, user_id: str, *, room_id: str | None, kind: str) -> Ticket:
        """Reserve a reply for `user_id` (in `room_id`, or stateless when None), or raise."""
        await self._check_budget(user_id, kind)
        # No await from here on: check and reserve are one step.
        ticket = Ticket(self, user_id, room_id, kind)
        if room_id is not None:
            pending = self._room_pending.get(room_id, 0)
            if pending > self._assistant.max_queued_replies_per_room:
                self._refused(kind, CONFLICT)
                raise AppError(CONFLICT, "the assistant is busy in this room; try again shortly")
            self._room_pending[room_id] = pending + 1
        elif not self._take_slot(user_id):
            self._refused(kind, RATE_LIMITED)
            raise rate_limited(
                f"{self._limits.max_concurrent_replies} replies are already running for you; "
                "wait for one to finish", DEFAULT_RETRY_AFTER,
            )
        else:
            ticket.running = True
        self._update_gauges()
        return ticket

    @asynccontextmanager
    async def admitted(
        self, user_id: str, *, room_id: str | None = None, kind: str
    ) -> AsyncIterator[Ticket]:
        """`admit`, and release when the block ends, however it ends."""
        ticket = await self.admit(user_id, room_id=room_id, kind=kind)
        try:
            yield ticket
        finally:
            ticket.release()

    async def wait_to_run(self, ticket: Ticket) -> None:
        """Take a running slot for a room reply, waiting (in order) while the user has none."""
        if ticket.running or ticket.released:
            return
        user_id = ticket.user_id
        if not self._waiters.get(user_id) and self._take_slot(user_id):
            ticket.running = True
            self._update_gauges()
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(user_id, deque())
        waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._free_slot(user_id)  # handed over just as we were cancelled: pass it on
            else:
                if granted in waiters:
                    waiters.remove(granted)
                if not waiters and self._waiters.get(user_id) is waiters:
                    self._waiters.pop(user_id, None)
            raise
        ticket.running = True  # the releasing reply handed its slot over
        self._update_gauges()

    # -- releasing ------------------------------------------------------------------------

    def release(self, ticket: Ticket) -> None:
        """Give back what `ticket` holds (idempotent)."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.room_id is not None:
            left = self._room_pending.get(ticket.room_id, 1) - 1
            if left > 0:
                self._room_pending[ticket.room_id] = left
            else:
                self._room_pending.pop(ticket.room_id, None)
        if ticket.running:
            ticket.running = False
            self._free_slot(ticket.user_id)
        self._update_gauges()

    # -- reading --------------------------------------------------------------------------

    def would_run_now(self, ticket: Ticket) -> bool:
        """Whether `wait_to_run` would give this ticket a running slot without waiting."""
        user_id = ticket.user_id
        return ticket.running or (not self._waiters.get(user_id) and self._running.get(
            user_id, 0) < self._limits.max_concurrent_replies)

    def running(self, user_id: str) -> int:
        """Replies running for a user on this node."""
        return self._running.get(user_id, 0)

    def pending(self, room_id: str) -> int:
        """Replies waiting or running in a room on this node."""
        return self._room_pending.get(room_id, 0)

    # -- internals ------------------------------------------------------------------------

    async def _check_budget(self, user_id: str, kind: str) -> None:
        budget = self._limits.max_tokens_per_day
        if budget and await self._limiter.count(tokens_key(user_id), DAY) >= budget:
            self._refused(kind, RATE_LIMITED)
            until_midnight = DAY - int(time.time()) % DAY
            raise rate_limited("daily token budget used up; it resets at 00:00 UTC",
                               until_midnight)

    def _take_slot(self, user_id: str) -> bool:
        running = self._running.get(user_id, 0)
        if running >= self._limits.max_concurrent_replies:
            return False
        self._running[user_id] = running + 1
        return True

    def _free_slot(self, user_id: str) -> None:
        waiters = self._waiters.get(user_id)
        while waiters:
            granted = waiters.popleft()
            if not granted.done():
                granted.set_result(None)  # the slot moves to the next waiter as it is
                if not waiters:
                    self._waiters.pop(user_id, None)
                return
        self._waiters.pop(user_id, None)
        left = self._running.get(user_id, 1) - 1
        if left > 0:
            self._running[user_id] = left
        else:
            self._running.pop(user_id, None)

    def _refused(self, kind: str, code: str) -> None:
        self._metrics.admissions_refused.labels(path=kind, code=code).inc()

    def _update_gauges(self) -> None:
        self._metrics.replies_running.set(sum(self._running.values()))
        self._metrics.replies_pending.set(sum(self._room_pending.values()))
