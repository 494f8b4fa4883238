"""One assistant reply: its own task, one owner, one `finally` that releases everything.

Lifecycle: created → waiting (its turn in the room, then a running slot) → preparing →
streaming → finishing (the last deltas go out) → settling → finished. Stop, room
deletion and shutdown cancel this reply's task (never anything shared); the
cancellation is absorbed with `uncancel()` because the task ends right after.
Whatever happened, `_settle` closes the stream log entry, saves the final message and
tells the room, each step on its own so a failing Redis or MongoDB cannot skip the
others; `_release` then gives back the room turn and the admission ticket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from app.assistant.accounting import Accounting, UsageEntry
from app.assistant.admission import AdmissionGate, Ticket
from app.assistant.early import EarlyStart
from app.assistant.listeners import ReplyListeners
from app.assistant.prepare import ReplyPreparer
from app.assistant.queue import RoomQueue
from app.assistant.source import ReplyRequest, ReplySource
from app.assistant.stream import DeltaCoalescer
from app.config import AssistantSettings
from app.errors import (
    INTERNAL,
    PROVIDER_ERROR,
    UNAVAILABLE,
    AppError,
    error_from_exception,
    not_found,
)
from app.events import Emitter, room_channel
from app.ids import new_id
from app.llm.base import ChatMessage, LoopEvent, StreamEnd, TextDelta, ToolCallUpdate
from app.models import Message, Source, Usage, utcnow
from storage.messages import MessageStore
from storage.rooms import RoomStore
from storage.streams import StreamLog

log = logging.getLogger(__name__)

T = TypeVar("T")
CLEANUP_TIMEOUT = 5.0  # per cleanup step: a hung backend cannot keep a reply alive
RESULT_CHARS = 2000  # of a tool result sent to the room and kept on the message
State = Literal[
    "created", "waiting", "preparing", "streaming", "finishing", "settling", "finished"
]


@dataclass(frozen=True, slots=True)
class ReplyEnv:
    """What every reply works with (built once by the engine)."""

    settings: AssistantSettings
    rooms: RoomStore
    messages: MessageStore
    emitter: Emitter
    streams: StreamLog
    listeners: ReplyListeners
    accounting: Accounting
    preparer: ReplyPreparer
    source: ReplySource
    gate: AdmissionGate
    queue: RoomQueue[Reply]
    node_id: str
    idle_timeout: float  # seconds a source may stay silent (llm.request_timeout_seconds)


class Reply:
    """The owner of one reply. `start()` runs it as its own task; `cancel()` ends it."""

    def __init__(
        self,
        env: ReplyEnv,
        ticket: Ticket,
        room_id: str,
        reply_to: Message,
        *,
        model: str | None = None,
        context: bool = True,
        on_end: Callable[[Reply], None] = lambda reply: None,
        early: EarlyStart | None = None,
    ) -> None:
        self._env = env
        self._early = early  # the provider asked while the question was stored, if it was
        self._ticket = ticket
        self.room_id = room_id
        self.reply_to = reply_to
        self.requested_by = ticket.user_id
        self.kind = ticket.kind
        self.state: State = "created"
        self.message_id: str | None = None
        self.model_id: str | None = None
        self._requested_model = model
        self._context = context
        self._on_end = on_end
        self._task: asyncio.Task[None] | None = None
        self._cancel_reason: str | None = None
        self._cancelled = False
        self._error: AppError | None = None
        self._failure: BaseException | None = None  # the sender's (Redis, MongoDB)
        self._consuming = False
        self._sender: DeltaCoalescer | None = None
        self._placeholder: Message | None = None
        self._opening: asyncio.Task[None] | None = None
        self._announced = False  # assistant_started was sent (and the stream log started)
        self._stored_id: str | None = None
        self._prompt: list[ChatMessage] = []
        self._sources: list[Source] = []
        self._ends: list[StreamEnd] = []
        self._calls: dict[str, dict[str, Any]] = {}
        self._started_at = time.perf_counter()

    # -- control --------------------------------------------------------------------------

    def start(self) -> None:
        """Take a place in the room's line and run as a task of its own."""
        self._env.queue.join(self.room_id, self)
        self.state = "waiting"
        self._task = asyncio.create_task(self._run(), name=f"reply-{self.room_id}")

    def cancel(self, reason: str) -> bool:
        """End the reply (stop, room deleted, shutdown); False when it is already ending."""
        if self._task is None or self._task.done() or self.state in (
            "finishing", "settling", "finished"
        ):
            return False
        if self._cancel_reason is None:  # one cancel per task, never more
            self._cancel_reason = reason
            self._task.cancel()
        return True

    async def ended(self) -> None:
        """Wait for the task to end; cancelling the waiter does not cancel the reply."""
        if self._task is not None:
            await asyncio.wait({self._task})

    def snapshot(self) -> dict[str, Any] | None:
        """`active_stream` of join_room while the reply streams: what was sent so far."""
        if self.message_id is None or self.state not in ("streaming", "finishing"):
            return None
        sent = self._sender
        return {"message_id": self.message_id, "seq": sent.seq if sent else 0,
                "content": sent.content if sent else ""}

    # -- the task -------------------------------------------------------------------------

    async def _run(self) -> None:
        task = asyncio.current_task()
        try:
            try:
                await self._env.queue.wait_turn(self)
                await self._env.gate.wait_to_run(self._ticket)
                await self._generate()
            except asyncio.CancelledError:
                if self._cancel_reason is None or task is None:
                    raise  # not ours (the loop is going away): settle, then propagate
                task.uncancel()  # our own end: the task finishes right after settling
                self._cancelled = self._failure is None
            except Exception as exc:
                self._error = self._as_error(exc)
            finally:
                try:
                    await self._settle()
                except Exception:  # every step is guarded; this would be a bug here
                    log.exception("settling reply %s in room %s failed", self.message_id,
                                  self.room_id)
        finally:
            self._release()

    async def _generate(self) -> None:
        env = self._env
        self.state = "preparing"
        self._started_at = time.perf_counter()
        room = await env.rooms.cached(self.room_id)
        if room is None:
            raise not_found("room")
        self.model_id = env.preparer.model_for(room, self._requested_model)
        early = self._early
        if early is not None and not early.fits(self.reply_to, self.model_id):
            early.abandon()  # something came in between: the prompt is built again
            early = None
        # Known before the insert, should it be cut short (the early call's, if it is used).
        self._stored_id = early.reply_id if early is not None else new_id()
        # The room hears of the reply at once, and the placeholder is stored while the
        # prompt is built and the provider answers: between the provider's first token
        # and the first delta there is only the emit (checkpoints wait for the insert).
        await self._announce()
        self._opening = asyncio.create_task(self._store(), name=f"reply-open-{self.room_id}")
        self._opening.add_done_callback(self._on_stored)
        request: ReplyRequest | None = None
        if early is not None:
            try:
                request, self._sources = await early.prepared
            except Exception:  # e.g. the history held was not complete: the usual way
                early.abandon()
                early = None
        if request is None and self._context:
            request, self._sources = await env.preparer.prepare(
                room, self.reply_to, self.requested_by, self.model_id, self._ticket.probe
            )
        elif request is None:
            request = env.preparer.bare(room, self.reply_to, self.requested_by, self.model_id)
        self._prompt = request.messages
        # The message id is known before the insert: sources may tag what they send.
        await self._consume(replace(request, message_id=self._stored_id), early)

    async def _announce(self) -> None:
        env = self._env
        assert self._stored_id is not None and self.model_id is not None
        self.message_id = self._stored_id
        await env.streams.start(self.room_id, self.message_id, env.node_id)
        self._announced = True
        if self.state == "preparing":
            self.state = "streaming"
        await env.emitter.assistant_started(
            self.room_id, self.message_id, self.reply_to.message_id, self.model_id
        )
        env.listeners.started(self.room_id, self.message_id, self.reply_to.message_id)

    async def _store(self) -> None:
        assert self._stored_id is not None
        self._placeholder, _ = await self._env.messages.append({
            "_id": self._stored_id, "room_id": self.room_id, "role": "assistant", "author": None,
            "content": "", "file_ids": [], "reply_to": self.reply_to.message_id,
            "status": "streaming", "model": self.model_id, "requested_by": self.requested_by,
            "path": self.kind, "created_at": utcnow(), "checkpoint_at": utcnow(),
        })

    def _on_stored(self, task: asyncio.Task[None]) -> None:
        """A placeholder that could not be stored ends the reply (nothing would be saved)."""
        if task.cancelled() or task.exception() is None:
            return
        self._failure = self._failure or task.exception()
        self.cancel("failure")

    async def _opened(self) -> None:
        """Wait until the placeholder is stored (before it is updated)."""
        if self._opening is not None:
            await asyncio.shield(self._opening)

    async def _opened_anyway(self) -> None:
        """The opening ends before the reply settles, even when the reply was cut short."""
        opening = self._opening
        if opening is None:
            return
        done, _ = await asyncio.wait({opening}, timeout=CLEANUP_TIMEOUT)
        if not done:
            opening.cancel()
            await asyncio.wait({opening})
        if not opening.cancelled() and opening.exception() is not None and self._error is None:
            self._failure = self._failure or opening.exception()

    async def _consume(self, request: ReplyRequest, early: EarlyStart | None = None) -> None:
        settings = self._env.settings
        sender = DeltaCoalescer(
            self._send_delta, self._send_call, self._checkpoint, self._on_sender_failure,
            settings.delta_interval_ms, settings.checkpoint_seconds,
        )
        self._sender = sender
        # Not a TaskGroup child: a stop must let the sender finish what it is sending
        # (clients then hold exactly the saved text), not cancel it mid-send.
        sending = asyncio.create_task(sender.run(), name=f"reply-sender-{self.room_id}")
        self._consuming = True
        try:
            events = early.events() if early is not None else self._env.source(request)
            try:
                await self._read(events, sender)
            finally:
                await _aclose(events)
                if early is not None:
                    await early.aclose()
        finally:
            self._consuming = False
            if self.state in ("preparing", "streaming"):
                self.state = "finishing"
            sender.close()
            done, _ = await asyncio.wait({sending}, timeout=CLEANUP_TIMEOUT)
            if not done:
                sending.cancel()
                await asyncio.wait({sending})
        if self._failure is not None:
            raise self._failure

    async def _read(self, events: AsyncIterator[LoopEvent], sender: DeltaCoalescer) -> None:
        # A source silent for longer than a provider request may take is stuck: end it.
        idle = self._env.idle_timeout
        while True:
            try:
                async with asyncio.timeout(idle):
                    event = await anext(events)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise AppError(
                    PROVIDER_ERROR, f"the model sent nothing for {idle:g} s; the reply ends here"
                ) from exc
            self._take(event, sender)
            if sender.seq == 0 and isinstance(event, TextDelta) and event.text:
                # A provider's first chunks often arrive together: the first one goes
                # out before the rest of the burst is read.
                await sender.first_out()

    def _take(self, event: LoopEvent, sender: DeltaCoalescer) -> None:
        if isinstance(event, TextDelta):
            sender.push(event.text)
        elif isinstance(event, ToolCallUpdate):
            result = None if event.result is None else event.result[:RESULT_CHARS]
            self._calls[event.call_id] = {
                "call_id": event.call_id, "name": event.name, "arguments": event.arguments,
                "status": event.status, "result": result,
            }
            sender.push_call(ToolCallUpdate(
                event.call_id, event.name, event.arguments, event.status, result
            ))
        else:
            self._ends.append(event)

    # -- the sender's sinks -----------------------------------------------------------------

    async def _send_delta(self, seq: int, delta: str) -> None:
        env, message_id = self._env, str(self.message_id)
        # Logged before it is broadcast, so a snapshot never misses a sent delta.
        await env.streams.append(message_id, seq, delta)
        await env.emitter.assistant_delta(self.room_id, message_id, seq, delta)
        env.listeners.delta(self.room_id, message_id, delta)

    async def _send_call(self, update: ToolCallUpdate) -> None:
        call: dict[str, Any] = {"call_id": update.call_id, "name": update.name,
                                "arguments": update.arguments, "status": update.status}
        if update.result is not None:
            call["result"] = update.result
        await self._env.emitter.assistant_tool_call(self.room_id, str(self.message_id), call)
        self._env.listeners.tool_call(self.room_id, str(self.message_id), call)

    async def _checkpoint(self, content: str) -> None:
        await self._opened()
        message_id = str(self.message_id)
        await self._env.messages.update(message_id, {"content": content, "checkpoint_at": utcnow()},
                                        held=self._placeholder)
        await self._env.streams.touch(message_id)

    def _on_sender_failure(self, exc: BaseException) -> None:
        log.warning("reply %s in room %s: sending failed: %r", self.message_id, self.room_id, exc)
        self._failure = exc
        if self._consuming:
            self.cancel("failure")  # stop reading the model: nothing can be delivered

    # -- the end --------------------------------------------------------------------------

    async def _settle(self) -> None:
        env = self._env
        self.state = "settling"  # no longer shown as streaming, no longer stoppable
        await self._opened_anyway()
        error = self._error
        if error is None and self._failure is not None:
            error = self._as_error(self._failure)
        if self._placeholder is None or self.model_id is None:
            # Nothing was sent: tell whoever waits, and the room if it failed.
            if self._stored_id is not None:  # cut off while being stored: not `streaming`
                await self._attempt("cut-off message", env.messages.update(self._stored_id, {
                    "status": "error" if error else "cancelled",
                    "finish_reason": "error" if error else "cancelled"}))
            if self._announced and self.message_id is not None:
                await self._attempt("stream log", env.streams.finish(self.room_id,
                                                                     self.message_id))
            if error is not None:
                body: dict[str, Any] = {**error.as_dict(), "event": "send_message",
                                        "room_id": self.room_id}
                if self._announced:  # the room was told of it: this is how it ended
                    body["message_id"] = self.message_id
                await self._attempt("error event", env.emitter.error(
                    room_channel(self.room_id), body))
            env.listeners.failed(self.room_id, self.reply_to.message_id, error or AppError(
                UNAVAILABLE, "the reply was cancelled before it started"))
            return
        message_id = self._placeholder.message_id
        await self._attempt("stream log", env.streams.finish(self.room_id, message_id))
        if self._cancelled:
            status, finish = "cancelled", "cancelled"
        elif error is not None:
            status, finish = "error", "error"
        else:
            status, finish = "complete", (self._ends[-1].finish_reason if self._ends else "stop")
        content = self._sender.content if self._sender is not None else ""
        _, usage = await self._attempt("usage", env.accounting.usage(
            self.model_id, [e.usage for e in self._ends], self._prompt, content))
        usage = usage or Usage()
        first = self._sender.first_token_at if self._sender is not None else None
        latency_ms = round((time.perf_counter() - self._started_at) * 1000, 1)
        ttft_ms = round((first - self._started_at) * 1000, 1) if first is not None else None
        fields: dict[str, Any] = {
            "content": content, "status": status, "finish_reason": finish,
            "usage": usage.model_dump(), "sources": [s.model_dump() for s in self._sources],
            "metrics": {"latency_ms": latency_ms, "ttft_ms": ttft_ms},
        }
        if self._calls:
            fields["tool_calls"] = [_ended(call, status) for call in self._calls.values()]
        if error is not None:
            fields["error"] = error.as_dict()
        saved, final = await self._attempt("final message", env.messages.update(
            message_id, fields, held=self._placeholder))
        entry = UsageEntry(
            user_id=self.requested_by, path=self.kind, model=self.model_id, usage=usage,
            latency_ms=latency_ms, ttft_ms=ttft_ms, status=status, finish_reason=finish,
            room_id=self.room_id, message_id=message_id,
        )
        env.accounting.count(entry)
        await self._attempt("daily tokens", env.accounting.charge(entry))
        if saved and final is None:  # the room was deleted meanwhile
            env.listeners.failed(self.room_id, self.reply_to.message_id, not_found("room"))
            return
        if final is None:  # MongoDB failed: the room still learns how the reply ended
            final = Message.model_validate({**self._placeholder.model_dump(), **fields})
        await self._attempt("assistant_done", env.emitter.assistant_done(final, finish))
        await self._attempt("message_received", env.emitter.message_received(final))
        env.listeners.done(final, finish, error)
        if error is not None:
            await self._attempt("error event", env.emitter.error(
                room_channel(self.room_id),
                {**error.as_dict(), "event": "send_message", "room_id": self.room_id},
            ))

    def _release(self) -> None:
        if self._early is not None:
            self._early.abandon()  # cancelled before it was taken over
        self.state = "finished"
        self._env.queue.leave(self.room_id, self)
        self._ticket.release()
        self._on_end(self)

    async def _attempt(self, what: str, step: Awaitable[T]) -> tuple[bool, T | None]:
        """Run one cleanup step with a deadline; (whether it worked, its result)."""
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                return True, await step
        except Exception:
            log.warning("reply %s in room %s: %s failed", self.message_id, self.room_id, what,
                        exc_info=True)
            return False, None

    def _as_error(self, exc: BaseException) -> AppError:
        err = error_from_exception(exc)
        if err.code == INTERNAL:
            log.error("reply in room %s failed", self.room_id, exc_info=exc)
            return AppError(INTERNAL, f"the assistant failed: {type(exc).__name__}")
        return err


def _ended(call: dict[str, Any], status: str) -> dict[str, Any]:
    """A tool call as the final message keeps it; one still running was cut off."""
    if call["status"] != "running":
        return call
    why = "cancelled" if status == "cancelled" else "the reply ended before the tool did"
    return {**call, "status": "error", "result": why}


async def _aclose(events: AsyncIterator[LoopEvent]) -> None:
    """Close an async generator source so its own `finally` runs (streams, tools)."""
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
