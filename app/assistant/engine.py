"""The assistant in rooms: when to answer, one reply at a time per room, stop, regenerate."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import timedelta
from functools import partial
from typing import Any

from app.assistant.context import HISTORY_LIMIT, TokenCache, build_context
from app.assistant.listeners import ReplyListeners
from app.assistant.policy import ReplyJob, Retriever, wants_reply, wants_reply_text
from app.assistant.stream import ActiveReply, DeltaCoalescer
from app.config import AssistantSettings, LimitsSettings, LLMSettings
from app.errors import (
    CONFLICT,
    FORBIDDEN,
    INTERNAL,
    RATE_LIMITED,
    UNAVAILABLE,
    AppError,
    invalid,
    not_found,
)
from app.events import Emitter, room_channel
from app.ids import new_id
from app.llm.base import ChatMessage, ChatParams, StreamEnd, TokenUsage
from app.llm.registry import ProviderRegistry
from app.llm.tokens import count_messages, count_tokens
from app.metrics import Metrics
from app.models import Message, Principal, Room, Source, Usage, utcnow
from app.tasks import cancel_and_wait
from storage.control import ControlBus
from storage.messages import MessageStore
from storage.ratelimit import RateLimiter
from storage.rooms import RoomStore
from storage.streams import StreamLog

log = logging.getLogger(__name__)

DAY = 86_400


class AssistantEngine:
    """Runs replies: per room a bounded queue and one worker; per user a concurrency cap."""

    def __init__(
        self,
        settings: AssistantSettings,
        llm: LLMSettings,
        limits: LimitsSettings,
        registry: ProviderRegistry,
        rooms: RoomStore,
        messages: MessageStore,
        emitter: Emitter,
        metrics: Metrics,
        streams: StreamLog,
        control: ControlBus,
        node_id: str,
        limiter: RateLimiter,
    ) -> None:
        self._settings = settings
        self._llm = llm
        self._limits = limits
        self.registry = registry
        self._rooms = rooms
        self._messages = messages
        self._emitter = emitter
        self._metrics = metrics
        self._streams = streams
        self._control = control
        self._node_id = node_id
        self._limiter = limiter
        control.subscribe(self._on_command)
        self.retriever = Retriever()
        self.listeners = ReplyListeners()
        self._active: dict[str, ActiveReply] = {}
        self._queues: dict[str, deque[ReplyJob]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, int] = {}
        self._per_user: dict[str, int] = {}
        self._tokens = TokenCache()
        self._closing = False
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sweep that fails replies whose node died mid-stream."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="reply-sweep")

    async def _sweep_forever(self) -> None:
        # Live replies checkpoint every checkpoint_seconds; twice that plus a margin
        # without one means the node that ran it is gone.
        stale_after = timedelta(seconds=2 * self._settings.checkpoint_seconds + 10)
        while True:
            try:
                count = await self._messages.fail_interrupted(utcnow() - stale_after)
                if count:
                    log.warning("%d interrupted replies were marked error", count)
            except Exception:
                log.exception("reply sweep failed")
            await asyncio.sleep(30)

    @property
    def max_output_tokens(self) -> int:
        """The reply length cap (assistant.max_output_tokens)."""
        return self._settings.max_output_tokens

    # -- RoomHooks ------------------------------------------------------------------------

    async def validate_model(self, model: str) -> None:
        """`invalid_payload` for unknown models, `unavailable` for unconfigured providers."""
        self.registry.resolve(model)

    async def before_user_message(self, room: Room, principal: Principal, content: str) -> None:
        """Refuse, before anything is stored, a message whose reply could not be queued."""
        if not wants_reply_text(room, content):
            return
        # Queued plus the one being prepared or streamed.
        pending = self._pending.get(room.room_id, 0)
        if pending > self._settings.max_queued_replies_per_room:
            raise AppError(CONFLICT, "the assistant is busy in this room; try again shortly")
        if self._per_user.get(principal.user_id, 0) >= self._limits.max_concurrent_replies:
            raise AppError(RATE_LIMITED, "too many replies in progress for you; wait for one")
        budget = self._limits.max_tokens_per_day
        if budget and await self._limiter.count(f"tokens:{principal.user_id}", DAY) >= budget:
            raise AppError(RATE_LIMITED, "daily token budget used up; it resets at 00:00 UTC")

    async def on_user_message(self, room: Room, message: Message) -> None:
        if wants_reply(room, message) and message.author is not None:
            self._enqueue(ReplyJob(room.room_id, message, message.author.user_id))

    async def active_stream(self, room_id: str) -> dict[str, Any] | None:
        active = self._active.get(room_id)
        if active is not None:
            return active.snapshot()
        entry = await self._streams.get(room_id)  # a reply running on another node
        if entry is None:
            return None
        return {"message_id": entry["message_id"], "seq": entry["seq"],
                "content": entry["content"]}

    async def on_room_deleted(self, room_id: str) -> None:
        for job in self._queues.pop(room_id, ()):
            self._release(job.requested_by)
        active = self._active.get(room_id)
        if active is not None and active.task is not None:
            active.stop_requested = True
            active.task.cancel()

    # -- commands -------------------------------------------------------------------------

    async def stop(self, principal: Principal, room: Room, message_id: str | None) -> str:
        """Stop the reply in progress; its partial text is kept as `cancelled`."""
        member = room.member(principal.user_id)
        if member is None or member.role == "viewer":
            raise AppError(FORBIDDEN, "only members can stop the assistant")
        entry = await self.active_stream(room.room_id)
        if entry is None or (message_id is not None and entry["message_id"] != message_id):
            raise not_found("reply in progress")
        # Every node hears it; the one running the reply cancels it.
        await self._control.publish(
            {"type": "stop", "room_id": room.room_id, "message_id": entry["message_id"]}
        )
        return str(entry["message_id"])

    async def _on_command(self, command: dict[str, Any]) -> None:
        if command.get("type") != "stop":
            return
        active = self._active.get(str(command.get("room_id")))
        if active is not None and active.message_id == command.get("message_id"):
            active.stop_requested = True
            if active.task is not None:
                active.task.cancel()

    async def regenerate(self, principal: Principal, room: Room, message_id: str) -> None:
        """Queue a new reply to the same user message (the old reply stays)."""
        member = room.member(principal.user_id)
        if member is None or member.role == "viewer":
            raise AppError(FORBIDDEN, "only members can ask the assistant")
        target = await self._messages.get(message_id)
        if target is None or target.room_id != room.room_id:
            raise not_found("message")
        if target.role != "user":
            raise invalid("message_id: only a user message can be answered again")
        await self.before_user_message(room, principal, "@assistant")
        self._enqueue(ReplyJob(room.room_id, target, principal.user_id))

    # -- queue ----------------------------------------------------------------------------

    def _enqueue(self, job: ReplyJob) -> None:
        if self._closing:
            return
        self._queues.setdefault(job.room_id, deque()).append(job)
        self._pending[job.room_id] = self._pending.get(job.room_id, 0) + 1
        self._per_user[job.requested_by] = self._per_user.get(job.requested_by, 0) + 1
        if job.room_id not in self._workers:
            task = asyncio.create_task(self._drain(job.room_id), name=f"replies-{job.room_id}")
            self._workers[job.room_id] = task

    async def _drain(self, room_id: str) -> None:
        try:
            while queue := self._queues.get(room_id):
                job = queue.popleft()
                try:
                    await self._reply(job)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reply in room %s failed", room_id)
                finally:
                    self._release(job.requested_by)
                    self._pending[room_id] = self._pending.get(room_id, 1) - 1
        finally:
            self._workers.pop(room_id, None)
            if not self._queues.get(room_id):
                self._queues.pop(room_id, None)
                self._pending.pop(room_id, None)

    def _release(self, user_id: str) -> None:
        left = self._per_user.get(user_id, 1) - 1
        if left > 0:
            self._per_user[user_id] = left
        else:
            self._per_user.pop(user_id, None)

    # -- one reply ------------------------------------------------------------------------

    async def _reply(self, job: ReplyJob) -> None:
        room = await self._rooms.get(job.room_id)
        if room is None:
            return
        model_id = room.model or self.registry.default_model()
        if model_id is None:
            await self._emitter.error(room_channel(room.room_id), {
                "code": UNAVAILABLE, "room_id": room.room_id, "event": "send_message",
                "message": "no LLM provider is configured: set OPENAI_API_KEY or run make install",
            })
            return
        provider, model_name = self.registry.resolve(model_id)
        history = await self._messages.page(
            room.room_id, before_seq=job.reply_to.seq + 1, limit=HISTORY_LIMIT
        )
        info = self.registry.model_info(model_id)
        window = info.context_window if info else self._llm.local_context_window
        max_out = self._settings.max_output_tokens
        budget = max(window - max_out, 256)
        # Recall (an embedding call) only pays off when older turns will not fit:
        # more history than one page, or more text than the budget (~3 chars a token).
        overflows = (len(history) >= HISTORY_LIMIT
                     or sum(len(m.content) for m in history) > budget * 3)
        sources, sources_text = await self.retriever.retrieve(
            room, job.reply_to, recall=overflows
        )
        # Token counting is CPU work: off the event loop.
        prompt = await asyncio.to_thread(partial(
            build_context, room, history, budget_tokens=budget,
            assistant_name=self._settings.name, sources_text=sources_text, cache=self._tokens,
        ))
        stored, _ = await self._messages.append({
            "_id": new_id(), "room_id": room.room_id, "role": "assistant", "author": None,
            "content": "", "file_ids": [], "reply_to": job.reply_to.message_id,
            "status": "streaming", "model": model_id, "requested_by": job.requested_by,
            "created_at": utcnow(), "checkpoint_at": utcnow(),
        })
        active = ActiveReply(room.room_id, stored.message_id, job.reply_to.message_id,
                             model_id, job.requested_by, stored.seq)
        active.task = asyncio.current_task()
        self._active[room.room_id] = active
        await self._streams.start(room.room_id, stored.message_id, self._node_id)
        await self._emitter.assistant_started(
            room.room_id, stored.message_id, job.reply_to.message_id, model_id
        )
        self.listeners.started(room.room_id, stored.message_id, job.reply_to.message_id)
        await self._stream(active, provider.stream_chat(
            prompt, model_name, ChatParams(max_tokens=max_out)
        ), prompt, sources)

    async def _stream(
        self, active: ActiveReply, events: Any, prompt: list[ChatMessage], sources: list[Source]
    ) -> None:
        room_id, message_id = active.room_id, active.message_id

        async def send(seq: int, delta: str) -> None:
            # Logged before it is broadcast, so a snapshot never misses a sent delta.
            await self._streams.append(room_id, message_id, seq, delta)
            await self._emitter.assistant_delta(room_id, message_id, seq, delta)
            self.listeners.delta(room_id, message_id, delta)

        async def checkpoint(content: str) -> None:
            await self._messages.update(message_id, {"content": content, "checkpoint_at": utcnow()})

        coalescer = DeltaCoalescer(active, send, checkpoint, self._settings.delta_interval_ms,
                                   self._settings.checkpoint_seconds)
        coalescer.start()
        end: StreamEnd | None = None
        error: AppError | None = None
        cancelled = False
        try:
            async for event in events:
                if isinstance(event, StreamEnd):
                    end = event
                else:
                    coalescer.push(event.text)
        except asyncio.CancelledError:
            cancelled = True
        except AppError as exc:
            error = exc
        except Exception as exc:
            log.exception("provider stream failed in room %s", room_id)
            error = AppError(INTERNAL, f"the assistant failed: {type(exc).__name__}")
        finally:
            await coalescer.close()
            self._active.pop(room_id, None)
            await asyncio.shield(self._streams.finish(room_id, message_id))
        await self._finish(active, prompt, sources, end, error, cancelled)
        if cancelled and not active.stop_requested:
            raise asyncio.CancelledError

    async def _finish(
        self, active: ActiveReply, prompt: list[ChatMessage], sources: list[Source],
        end: StreamEnd | None, error: AppError | None, cancelled: bool,
    ) -> None:
        if cancelled:
            status, finish = "cancelled", "cancelled"
        elif error is not None:
            status, finish = "error", "error"
        else:
            status, finish = "complete", end.finish_reason if end else "stop"
        if end is not None:
            tokens = end.usage
        else:
            # Cut off before the provider reported usage: count what was sent and received.
            tokens = TokenUsage(await asyncio.to_thread(count_messages, prompt),
                                await asyncio.to_thread(count_tokens, active.content))
        cost = self.registry.cost_usd(active.model, tokens)
        usage = Usage(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens,
                      cached_tokens=tokens.cached_tokens, cost_usd=cost)
        now = time.perf_counter()
        ttft = active.first_token_at - active.started_at if active.first_token_at else None
        fields: dict[str, Any] = {
            "content": active.content, "status": status, "finish_reason": finish,
            "usage": usage.model_dump(),
            "sources": [s.model_dump() for s in sources],
            "metrics": {"latency_ms": round((now - active.started_at) * 1000, 1),
                        "ttft_ms": round(ttft * 1000, 1) if ttft is not None else None},
        }
        if error is not None:
            fields["error"] = error.as_dict()
        final = await asyncio.shield(self._messages.update(active.message_id, fields))
        if final is None:  # the room was deleted meanwhile
            return
        self._record_metrics(finish, usage, ttft)
        await self._limiter.add(
            f"tokens:{active.requested_by}", usage.input_tokens + usage.output_tokens, DAY
        )
        await self._emitter.assistant_done(final, finish)
        await self._emitter.message_received(final)
        self.listeners.done(final, finish, error)
        if error is not None:
            await self._emitter.error(room_channel(active.room_id), {
                **error.as_dict(), "event": "send_message", "room_id": active.room_id,
            })

    def _record_metrics(self, finish: str, usage: Usage, ttft: float | None) -> None:
        self._metrics.replies.labels(finish_reason=finish).inc()
        self._metrics.messages.labels(role="assistant").inc()
        self._metrics.tokens.labels(kind="input").inc(usage.input_tokens)
        self._metrics.tokens.labels(kind="output").inc(usage.output_tokens)
        self._metrics.cost.inc(usage.cost_usd)
        if ttft is not None:
            self._metrics.ttft.observe(ttft)

    async def close(self) -> None:
        """Cancel every reply (partial text is saved) and wait for them."""
        self._closing = True
        await cancel_and_wait(self._sweeper)
        self._queues.clear()
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

