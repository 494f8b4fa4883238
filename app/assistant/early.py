"""A reply asked of the model while its question is still being stored.

Storing the question is a database round trip; the reply's prompt does not need it:
it is the room's history up to the question, which the node holds in memory
(storage/recent.py), plus the question itself. So when a reply can run at once (nothing
else in the room's line, a running slot free, the room's tail held), the prompt is built
and the provider asked while the insert is on its way, and what the provider sends waits
in a bounded buffer. The reply then takes it over only if the question got the seq it was
built for (nothing came in between: the prompt is exactly the one the reply would have
built); otherwise, or if the question was not stored, the early call is cancelled and
the reply runs as usual. Nothing reaches the room before the question is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from app.assistant.admission import Ticket
from app.assistant.context import HISTORY_LIMIT
from app.assistant.prepare import ReplyPreparer
from app.assistant.source import ReplyRequest, ReplySource
from app.errors import AppError
from app.ids import new_id
from app.llm.base import LoopEvent
from app.models import Message, Room, Source
from storage.messages import MessageStore

BUFFER = 1024  # events held before the reply takes them (the provider then waits)


class _End:
    """The source ended; `error` is what it raised, if anything."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Stale(Exception):
    """The history held was not complete up to the question: no early start."""


class EarlyStart:
    """One early provider call: its prompt, its events so far, and its task."""

    def __init__(self, question: Message, model_id: str, requested: str | None) -> None:
        self.question = question  # as it will be stored (its seq expected, not yet given)
        self.model_id = model_id
        self.requested = requested  # the model the message asked for, if any
        self.reply_id = new_id()  # the reply's message id, known to the source already
        self.prepared: asyncio.Future[tuple[ReplyRequest, list[Source]]] = (
            asyncio.get_running_loop().create_future())
        self._events: asyncio.Queue[LoopEvent | _End] = asyncio.Queue(BUFFER)
        self._task: asyncio.Task[None] | None = None

    def fits(self, stored: Message, model_id: str) -> bool:
        """Whether the stored question is the one the prompt was built for."""
        return (stored.message_id == self.question.message_id
                and stored.seq == self.question.seq and model_id == self.model_id)

    def start(self, run: Callable[[EarlyStart], Any]) -> None:
        self._task = asyncio.create_task(run(self), name="reply-early")

    async def events(self) -> AsyncIterator[LoopEvent]:
        """What the source sent and sends, in order; its error is raised here."""
        while True:
            item = await self._events.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    async def put(self, item: LoopEvent | _End) -> None:
        await self._events.put(item)

    def abandon(self) -> None:
        """Cancel the early call (the question was not stored, or not as expected)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if not self.prepared.done():
            self.prepared.cancel()
        elif not self.prepared.cancelled():
            self.prepared.exception()  # seen: the reply prepares its prompt itself

    async def aclose(self) -> None:
        """End the early call and wait for its source to close."""
        self.abandon()
        if self._task is not None:
            await asyncio.wait({self._task})


class EarlyStarter:
    """Decides whether a reply may start early, and runs the early part."""

    def __init__(self, preparer: ReplyPreparer, messages: MessageStore,
                 source: ReplySource) -> None:
        self._preparer = preparer
        self._messages = messages
        self._source = source

    def begin(self, ticket: Ticket, room: Room, question: Message,
              model: str | None) -> EarlyStart | None:
        """Start building the prompt and asking the model; None when it cannot start early.

        `question`: the message as it will be stored, with the seq it should get.
        """
        try:
            model_id = self._preparer.model_for(room, model)
        except AppError:
            return None  # the reply fails the usual way
        early = EarlyStart(question, model_id, model)
        probe = ticket.probe
        early.start(lambda e: self._run(e, room, ticket.user_id, probe))
        return early

    async def _run(self, early: EarlyStart, room: Room, requested_by: str,
                   probe: asyncio.Future[Any] | None) -> None:
        question = early.question
        try:
            history = await self._messages.page(
                room.room_id, before_seq=question.seq, limit=HISTORY_LIMIT - 1)
            if (history[-1].seq if history else 0) != question.seq - 1:
                raise Stale("the room's history is not complete up to the question")
            request, sources = await self._preparer.prepare(
                room, question, requested_by, early.model_id, probe,
                history=[*history, question])
        except BaseException as exc:
            if not early.prepared.done():
                early.prepared.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        request = replace(request, message_id=early.reply_id)
        early.prepared.set_result((request, sources))
        events = self._source(request)
        error: BaseException | None = None
        try:
            async for event in events:
                await early.put(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        await early.put(_End(error))
