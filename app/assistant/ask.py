"""Ask in a room and follow the answer: `POST /run` with a chat, the plain WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from app.assistant.engine import AssistantEngine
from app.assistant.listeners import ReplyEvent
from app.config import AssistantSettings
from app.errors import UNAVAILABLE, AppError
from app.models import Message, Principal
from app.room_hooks import ReplyOptions
from app.rooms import RoomService
from app.schemas import SendMessage, parse


class AskService:
    """The room path for clients that are not Socket.IO members of the room."""

    def __init__(
        self, settings: AssistantSettings, rooms: RoomService, engine: AssistantEngine
    ) -> None:
        self._settings = settings
        self._rooms = rooms
        self._engine = engine

    async def ask(
        self, principal: Principal, room_id: str, content: str, *, model: str | None = None,
        kind: str = "run", file_ids: Sequence[str] = (),
    ) -> AsyncGenerator[tuple[Message | None, ReplyEvent], None]:
        """Send `content` to the room, then yield its reply's events until it is done.

        The first item carries the stored user message. The assistant answers even in a
        room whose mode would not (asking here is an explicit request), with `model` when
        given. No reply started within `assistant.reply_start_timeout_seconds` (or
        nothing sent for that long) → `unavailable`; the message stays in the chat.
        """
        options = ReplyOptions(kind=kind, always=True, model=model)
        timeout = self._settings.reply_start_timeout_seconds
        with self._engine.listeners.subscribe(room_id) as sub:
            message = await self._rooms.send_message(principal, parse(
                SendMessage, {"room_id": room_id, "content": content, "file_ids": list(file_ids)}
            ), options)
            reply_id: str | None = None
            first = True
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout  # other replies' events do not extend it
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await sub.get()
                except TimeoutError as exc:
                    started = reply_id is not None
                    raise AppError(UNAVAILABLE, _waited(timeout, started=started)) from exc
                if reply_id is None and event.reply_to == message.message_id:
                    if event.kind == "failed" and event.error is not None:
                        raise event.error
                    if event.kind in ("started", "done"):  # done: ended as it started
                        reply_id = event.message_id
                if reply_id is None or event.message_id != reply_id:
                    continue
                deadline = loop.time() + timeout
                yield (message if first else None), event
                first = False
                if event.kind == "done":
                    return


def _waited(timeout: float, *, started: bool) -> str:
    if not started:
        return (f"no reply started within {timeout:g} s: the assistant is busy in this chat. "
                "Your message is saved and will be answered in the chat.")
    return (f"the reply sent nothing for {timeout:g} s; "
            "it goes on in the chat, where its answer will be saved")
