"""Ask the assistant in a room and follow its reply: for `POST /run` and the plain WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from app.assistant.engine import AssistantEngine
from app.assistant.listeners import ReplyEvent
from app.assistant.policy import wants_reply
from app.errors import AppError
from app.llm.base import ChatMessage, ChatParams, StreamEvent
from app.models import Message, Principal
from app.rooms import RoomService
from app.schemas import CreateRoom, SendMessage, parse


class AskService:
    """The room path for clients that are not Socket.IO members of the room."""

    def __init__(self, rooms: RoomService, engine: AssistantEngine) -> None:
        self._rooms = rooms
        self._engine = engine

    async def new_session(self, principal: Principal, title: str = "Chat") -> str:
        """A new private room (a session id for the plain WebSocket)."""
        room = await self._rooms.create_room(principal, CreateRoom(title=title))
        return room.room_id

    async def ask(
        self, principal: Principal, room_id: str, content: str, *, model: str | None = None,
        file_ids: Sequence[str] = (),
    ) -> AsyncIterator[tuple[Message | None, ReplyEvent]]:
        """Send `content` to the room, then yield the reply's events until it is done.

        The first item carries the stored user message. The assistant answers even in
        a room whose mode would not (asking here is an explicit request).
        """
        if model is not None:
            await self._engine.validate_model(model)
        with self._engine.listeners.subscribe(room_id) as sub:
            message = await self._rooms.send_message(principal, parse(
                SendMessage, {"room_id": room_id, "content": content, "file_ids": list(file_ids)}
            ))
            room = await self._rooms.load(principal, room_id)
            if not wants_reply(room, message):
                await self._engine.regenerate(principal, room, message.message_id)
            reply_id: str | None = None
            first = True
            while True:
                event = await sub.get()
                if event.kind == "started" and event.delta == message.message_id:
                    reply_id = event.message_id
                if reply_id is None or event.message_id != reply_id:
                    continue
                yield (message if first else None), event
                first = False
                if event.kind == "done":
                    return

    async def complete(
        self, model: str | None, messages: Sequence[ChatMessage], params: ChatParams
    ) -> tuple[str, AsyncIterator[StreamEvent]]:
        """A stateless completion (no room): the model id used and its event stream."""
        model_id = model or self._engine.registry.default_model()
        if model_id is None:
            raise AppError("unavailable", "no LLM provider is configured")
        provider, name = self._engine.registry.resolve(model_id)
        if params.max_tokens is None:
            params = ChatParams(params.temperature, self._engine.max_output_tokens)
        return model_id, provider.stream_chat(messages, name, params)
