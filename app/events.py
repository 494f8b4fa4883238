"""Every server→client event, named once; sent through a transport the app provides."""

from __future__ import annotations

from typing import Any, Protocol

from app.models import Author, Message, Room


def room_channel(room_id: str) -> str:
    """The Socket.IO room every member's joined socket is in."""
    return f"room:{room_id}"


def user_channel(user_id: str) -> str:
    """The Socket.IO room holding every socket of one user (all tabs, all namespaces)."""
    return f"user:{user_id}"


class Transport(Protocol):
    """What services may ask of the realtime layer; implemented in namespaces/."""

    async def emit(
        self,
        event: str,
        data: dict[str, Any],
        *,
        to: str,
        skip_sid: str | None = None,
        all_namespaces: bool = False,
    ) -> None:
        """Send to a channel or a sid."""

    async def enter_room(self, sid: str, channel: str) -> None:
        """Add a local socket to a channel."""

    async def leave_room(self, sid: str, channel: str) -> None:
        """Remove a local socket from a channel."""

    async def leave_user_sockets(self, user_id: str, channel: str) -> None:
        """Remove every socket of a user, on any node, from a channel."""


def _json(model: Room | Message | Author) -> dict[str, Any]:
    return model.model_dump(mode="json")


class Emitter:
    """One method per outbound event of SPEC §3."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def room_created(self, user_id: str, room: Room) -> None:
        await self.transport.emit("room_created", {"room": _json(room)}, to=user_channel(user_id))

    async def room_joined(
        self, sid: str, room: Room, members: list[dict[str, Any]], online: list[str]
    ) -> None:
        payload = {"room": _json(room), "members": members, "online": online}
        await self.transport.emit("room_joined", payload, to=sid)

    async def room_updated(self, room: Room) -> None:
        await self.transport.emit(
            "room_updated", {"room": _json(room)}, to=room_channel(room.room_id)
        )

    async def room_deleted(self, room_id: str, *, user_id: str | None = None) -> None:
        to = user_channel(user_id) if user_id else room_channel(room_id)
        await self.transport.emit("room_deleted", {"room_id": room_id}, to=to)

    async def room_invited(self, user_id: str, room: Room) -> None:
        await self.transport.emit(
            "room_invited", {"room": _json(room)}, to=user_channel(user_id), all_namespaces=True
        )

    async def user_joined(self, room_id: str, user: Author, *, skip_sid: str | None) -> None:
        await self.transport.emit(
            "user_joined",
            {"room_id": room_id, "user": _json(user)},
            to=room_channel(room_id),
            skip_sid=skip_sid,
        )

    async def user_left(self, room_id: str, user: Author) -> None:
        await self.transport.emit(
            "user_left", {"room_id": room_id, "user": _json(user)}, to=room_channel(room_id)
        )

    async def user_typing(self, room_id: str, user_id: str, is_typing: bool, skip_sid: str) -> None:
        await self.transport.emit(
            "user_typing",
            {"room_id": room_id, "user_id": user_id, "is_typing": is_typing},
            to=room_channel(room_id),
            skip_sid=skip_sid,
        )

    async def message_received(self, message: Message) -> None:
        await self.transport.emit(
            "message_received", {"message": _json(message)}, to=room_channel(message.room_id)
        )

    async def assistant_started(
        self, room_id: str, message_id: str, reply_to: str | None, model: str
    ) -> None:
        await self.transport.emit(
            "assistant_started",
            {"room_id": room_id, "message_id": message_id, "reply_to": reply_to, "model": model},
            to=room_channel(room_id),
        )

    async def assistant_delta(self, room_id: str, message_id: str, seq: int, delta: str) -> None:
        await self.transport.emit(
            "assistant_delta",
            {"room_id": room_id, "message_id": message_id, "seq": seq, "delta": delta},
            to=room_channel(room_id),
        )

    async def assistant_tool_call(
        self, room_id: str, message_id: str, call: dict[str, Any]
    ) -> None:
        """`call`: {call_id, name, arguments, status, result?} (result already truncated)."""
        await self.transport.emit(
            "assistant_tool_call",
            {"room_id": room_id, "message_id": message_id, **call},
            to=room_channel(room_id),
        )

    async def assistant_done(self, message: Message, finish_reason: str) -> None:
        await self.transport.emit(
            "assistant_done",
            {
                "room_id": message.room_id,
                "message_id": message.message_id,
                "finish_reason": finish_reason,
                "message": _json(message),
            },
            to=room_channel(message.room_id),
        )

    async def voice_state(
        self, room_id: str, speaker: Author | None, assistant: str
    ) -> None:
        """Who holds a voice room's floor and what the assistant is doing."""
        await self.transport.emit(
            "voice_state",
            {"room_id": room_id, "speaker": _json(speaker) if speaker else None,
             "assistant": assistant},
            to=room_channel(room_id),
        )

    async def voice_transcript(self, room_id: str, user_id: str, text: str, final: bool) -> None:
        """The speaker's words: deltas (`final` false), then the whole turn (`final` true)."""
        await self.transport.emit(
            "voice_transcript",
            {"room_id": room_id, "user_id": user_id, "text": text, "final": final},
            to=room_channel(room_id),
        )

    async def assistant_audio(self, room_id: str, message_id: str, seq: int, audio: bytes) -> None:
        """A piece of the spoken answer (PCM16 mono 24 kHz) as a binary attachment."""
        await self.transport.emit(
            "assistant_audio",
            {"room_id": room_id, "message_id": message_id, "seq": seq, "audio": audio},
            to=room_channel(room_id),
        )

    async def document_status(self, user_id: str, payload: dict[str, Any]) -> None:
        await self.transport.emit(
            "document_status", payload, to=user_channel(user_id), all_namespaces=True
        )

    async def session_expired(self, sid: str) -> None:
        await self.transport.emit("session_expired", {}, to=sid, all_namespaces=True)

    async def error(self, to: str, error: dict[str, Any]) -> None:
        await self.transport.emit("error", error, to=to)
