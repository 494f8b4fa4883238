"""What rooms delegate: the assistant's hooks and the book of pending invitations."""

from __future__ import annotations

from typing import Any, Protocol

from app.errors import UNAVAILABLE, AppError, not_found
from app.models import Message, Principal, Room


class RoomHooks(Protocol):
    """What the assistant engine adds to rooms (a no-op until one is attached)."""

    async def before_user_message(self, room: Room, principal: Principal, content: str) -> None:
        """Refuse a message (raise) before it is stored, e.g. when no reply could run."""

    async def on_user_message(self, room: Room, message: Message) -> None:
        """A user message was stored and broadcast."""

    async def active_stream(self, room_id: str) -> dict[str, Any] | None:
        """The reply being generated in the room: {message_id, seq, content}."""

    async def validate_model(self, model: str) -> None:
        """Raise `invalid_payload` for a model the server does not know."""

    async def on_room_deleted(self, room_id: str) -> None:
        """Cascade a deleted room to other stores (files, vectors)."""

    async def stop(self, principal: Principal, room: Room, message_id: str | None) -> str:
        """Stop the reply in progress; the stopped message id."""

    async def regenerate(self, principal: Principal, room: Room, message_id: str) -> None:
        """Answer a user message again."""


class NoHooks:
    async def before_user_message(self, room: Room, principal: Principal, content: str) -> None:
        return None

    async def on_user_message(self, room: Room, message: Message) -> None:
        return None

    async def active_stream(self, room_id: str) -> dict[str, Any] | None:
        return None

    async def validate_model(self, model: str) -> None:
        return None

    async def on_room_deleted(self, room_id: str) -> None:
        return None

    async def stop(self, principal: Principal, room: Room, message_id: str | None) -> str:
        raise not_found("reply in progress")

    async def regenerate(self, principal: Principal, room: Room, message_id: str) -> None:
        raise AppError(UNAVAILABLE, "no assistant is configured")


class InviteBook(Protocol):
    """Pending invitations for emails that have no account yet."""

    async def add(self, email: str, room_id: str, role: str) -> None:
        """Remember an invitation."""

    async def take(self, email: str) -> list[tuple[str, str]]:
        """Remove and return the (room_id, role) invitations of an email."""

    async def forget_room(self, room_id: str) -> None:
        """Drop the invitations of a deleted room."""
