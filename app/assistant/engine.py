"""The assistant in rooms: when to answer, admission, replies in order, stop, regenerate.

Each reply is a `Reply` (app/assistant/reply.py) running as its own task. This module
decides which messages get one, reserves it through the `AdmissionGate` before the
message is stored, starts it once the message is, and finds replies to stop or show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from app.assistant.accounting import Accounting
from app.assistant.admission import AdmissionGate, Ticket
from app.assistant.early import EarlyStart, EarlyStarter
from app.assistant.listeners import ReplyListeners
from app.assistant.policy import Retriever, wants_reply_text
from app.assistant.prepare import ReplyPreparer
from app.assistant.queue import RoomQueue
from app.assistant.reply import Reply, ReplyEnv
from app.assistant.source import ReplySource
from app.config import AssistantSettings, LLMSettings
from app.errors import FORBIDDEN, UNAVAILABLE, AppError, invalid, not_found
from app.events import Emitter
from app.llm.registry import ProviderRegistry
from app.media.attachments import ChatAttachments
from app.models import Message, Principal, Room, utcnow
from app.room_hooks import ReplyOptions
from app.tasks import cancel_and_wait
from storage.control import ControlBus
from storage.messages import MessageStore, message_from_doc
from storage.rooms import RoomStore
from storage.streams import StreamLog

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0  # seconds replies get to save their partial text on shutdown


class AssistantEngine:
    """Admits, starts, stops and shows this node's replies (the rooms' `RoomHooks`)."""

    def __init__(
        self,
        settings: AssistantSettings,
        llm: LLMSettings,
        registry: ProviderRegistry,
        rooms: RoomStore,
        messages: MessageStore,
        emitter: Emitter,
        streams: StreamLog,
        control: ControlBus,
        node_id: str,
        gate: AdmissionGate,
        accounting: Accounting,
        retriever: Retriever,
        source: ReplySource,
        listeners: ReplyListeners,
        attachments: ChatAttachments | None = None,
    ) -> None:
        self._settings = settings
        self.registry = registry
        self._messages = messages
        self._streams = streams
        self._control = control
        self._node_id = node_id
        self.gate = gate
        self.listeners = listeners
        self._attachments = attachments
        self._preparer = ReplyPreparer(settings, llm, registry, messages, retriever, attachments)
        self._early = EarlyStarter(self._preparer, messages, source)
        self._queue: RoomQueue[Reply] = RoomQueue()
        self._env = ReplyEnv(
            settings=settings, rooms=rooms, messages=messages, emitter=emitter,
            streams=streams, listeners=listeners, accounting=accounting,
            preparer=self._preparer, source=source, gate=gate, queue=self._queue,
            node_id=node_id, idle_timeout=llm.request_timeout_seconds,
        )
        self._replies: set[Reply] = set()
        self._closing = False
        self._sweeper: asyncio.Task[None] | None = None
        control.subscribe(self._on_command)

    @property
    def retriever(self) -> Retriever:
        """The retriever replies ask for sources."""
        return self._preparer.retriever

    @property
    def max_output_tokens(self) -> int:
        """The reply length cap (assistant.max_output_tokens)."""
        return self._settings.max_output_tokens

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

    # -- RoomHooks ------------------------------------------------------------------------

    async def validate_model(self, model: str) -> None:
        """`invalid_payload` for unknown models, `unavailable` for unconfigured providers."""
        self.registry.resolve(model)

    async def admit_reply(
        self, room: Room, principal: Principal, content: str, options: ReplyOptions,
        file_ids: Sequence[str] = (),
    ) -> Ticket | None:
        """Reserve the reply a new message asks for, before it is stored; None if none."""
        if not (options.always or wants_reply_text(room, content)):
            return None
        if options.model is not None:
            self.registry.resolve(options.model)
        if file_ids and self._attachments is not None:
            model_id = options.model or room.model or self.registry.default_model()
            if model_id is not None:  # without one the reply fails as `unavailable` anyway
                await self._attachments.check(room.room_id, file_ids, model_id)
        if self._closing:
            raise AppError(UNAVAILABLE, "the server is shutting down; try again shortly")
        ticket = await self.gate.admit(principal.user_id, room_id=room.room_id, kind=options.kind)
        if options.context:
            probe = asyncio.ensure_future(
                self._preparer.retriever.searchable(room, principal.user_id))
            probe.add_done_callback(_quiet)  # unused when the message is not stored
            ticket.probe = probe
        return ticket

    def start_early(
        self, ticket: Ticket, room: Room, question: dict[str, Any], options: ReplyOptions
    ) -> EarlyStart | None:
        """Ask the model while the question is stored, when the reply would run at once.

        Only for a plain message (no files) in a room whose line is empty, with a running
        slot free and the room's last seq known here (app/assistant/early.py).
        """
        room_id = room.room_id
        known = self._messages.known_last(room_id)
        if (known is None or not options.context or options.kind != "message"
                or question.get("file_ids") or self._closing
                or self._queue.in_room(room_id) or self.gate.pending(room_id) != 1
                or not self.gate.would_run_now(ticket)):
            return None
        draft = message_from_doc({**question, "seq": known + 1})
        return self._early.begin(ticket, room, draft, options.model)

    def start_reply(
        self, ticket: Ticket, room: Room, message: Message, options: ReplyOptions,
        early: EarlyStart | None = None,
    ) -> None:
        """Run the admitted reply to a stored message (its ticket now belongs to it)."""
        self.run_reply(ticket, room, message, options, early)

    def run_reply(
        self, ticket: Ticket, room: Room, message: Message, options: ReplyOptions,
        early: EarlyStart | None = None,
    ) -> Reply:
        """`start_reply`, returning the reply (its owner can wait for its end)."""
        reply = Reply(self._env, ticket, room.room_id, message, model=options.model,
                      context=options.context, on_end=self._replies.discard, early=early)
        self._replies.add(reply)
        reply.start()
        return reply

    async def active_streams(self, room_id: str) -> list[dict[str, Any]]:
        """The replies streaming in a room, on this node or another, oldest first."""
        local: dict[str, dict[str, Any]] = {}
        for reply in self._queue.in_room(room_id):
            snap = reply.snapshot()
            if snap is not None:
                local[snap["message_id"]] = snap
        try:
            entries = await self._streams.active(room_id)
        except Exception:
            if not local:
                raise
            log.warning("stream log unreadable; showing this node's replies only",
                        exc_info=True)
            entries = []
        found: list[dict[str, Any]] = []
        for entry in entries:
            message_id = entry["message_id"]
            if message_id in local:  # this node's own state is the freshest
                found.append(local.pop(message_id))
            elif entry["node_id"] == self._node_id or not await self._streaming(message_id):
                # This node runs no such reply, or its message ended: a leftover entry.
                await self._streams.finish(room_id, message_id)
            else:
                found.append({k: entry[k] for k in ("message_id", "seq", "content")})
        return found + list(local.values())

    async def _streaming(self, message_id: str) -> bool:
        message = await self._messages.get(message_id)
        return message is not None and message.status == "streaming"

    async def on_room_deleted(self, room_id: str) -> None:
        """Cancel the room's replies here, and on every other node."""
        await self._cancel_room(room_id)
        await self._control.publish({"type": "room_deleted", "room_id": room_id})

    async def _cancel_room(self, room_id: str) -> None:
        replies = self._queue.in_room(room_id)
        for reply in replies:
            reply.cancel("room deleted")
        # Let them settle before the room's messages go (bounded).
        await _ended(replies)

    # -- commands -------------------------------------------------------------------------

    async def stop(self, principal: Principal, room: Room, message_id: str | None) -> str:
        """Stop the reply in progress; its partial text is kept as `cancelled`."""
        member = room.member(principal.user_id)
        if member is None or member.role == "viewer":
            raise AppError(FORBIDDEN, "only members can stop the assistant")
        active = await self.active_streams(room.room_id)
        targets: list[str] = [a["message_id"] for a in active
                              if message_id is None or a["message_id"] == message_id]
        if not targets:
            raise not_found("reply in progress")
        local = {r.message_id: r for r in self._queue.in_room(room.room_id)}
        for target in targets:
            reply = local.get(target)
            if reply is not None:
                reply.cancel("stop")  # here: no round trip through Redis
            else:  # every node hears it; the one running the reply cancels it
                await self._control.publish(
                    {"type": "stop", "room_id": room.room_id, "message_id": target}
                )
        return targets[0]

    async def _on_command(self, command: dict[str, Any]) -> None:
        kind, room_id = command.get("type"), str(command.get("room_id"))
        if kind == "stop":
            for reply in self._queue.in_room(room_id):
                if reply.message_id == command.get("message_id"):
                    reply.cancel("stop")
        elif kind == "room_deleted":
            for reply in self._queue.in_room(room_id):
                reply.cancel("room deleted")

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
        options = ReplyOptions(kind="regenerate", always=True)
        ticket = await self.admit_reply(room, principal, target.content, options,
                                        target.file_ids)
        if ticket is not None:
            self.start_reply(ticket, room, target, options)

    async def close(self) -> None:
        """Cancel every reply (partial text is saved) and wait for them, bounded."""
        self._closing = True
        await cancel_and_wait(self._sweeper)
        replies = list(self._replies)
        for reply in replies:
            reply.cancel("shutdown")
        await _ended(replies)


async def _ended(replies: list[Reply]) -> None:
    """Wait for replies to end, at most SHUTDOWN_GRACE (their steps have deadlines too)."""
    if not replies:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SHUTDOWN_GRACE):
            await asyncio.gather(*(r.ended() for r in replies))


def _quiet(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (whoever awaits it handles it)."""
    if not future.cancelled():
        future.exception()
