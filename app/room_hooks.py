"""What rooms delegate: the assistant's hooks and the book of pending invitations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.errors import UNAVAILABLE, AppError, not_found
from app.models import Message, Principal, Room


@dataclass(frozen=True, slots=True)
class ReplyOptions:
    """How a new message asks for a reply.

    `kind`: the path (message, run, ws, ...), for limits and usage. `always`: answer even
    when the room's assistant mode would not (an explicit request). `model`: answer this
    turn with that model instead of the room's. `context`: whether the reply's prompt is
    built (history, sources) before its source runs.
    """

    kind: str = "message"
    always: bool = False
    model: str | None = None
    # False: the source brings its own context (the Realtime session), so no history,
    # retrieval or prompt is prepared for it.
    context: bool = True


class ReplyTicket(Protocol):
    """A reserved reply; released by whoever holds it (the reply, once started)."""

    def release(self) -> None: ...


class RoomHooks(Protocol):
    """What the assistant engine adds to rooms."""

    async def admit_reply(
        self, room: Room, principal: Principal, content: str, options: ReplyOptions,
        file_ids: Sequence[str] = (),
    ) -> ReplyTicket | None:
        """Reserve the reply a message asks for (raise if it cannot); None if it asks none.

        `file_ids` (already checked to be the room's) must suit the model that will answer.
        """

    def start_early(
        self, ticket: Any, room: Room, question: dict[str, Any], options: ReplyOptions
    ) -> Any | None:
        """The admitted reply's model asked while `question` (its document) is stored.

        None when it cannot start early; else given to `start_reply`, or `abandon()`ed.
        """

    def start_reply(
        self, ticket: Any, room: Room, message: Message, options: ReplyOptions,
        early: Any | None = None,
    ) -> None:
        """The message was stored: run its admitted reply."""

    async def active_streams(self, room_id: str) -> list[dict[str, Any]]:
        """The replies being generated in the room: [{message_id, seq, content}]."""

    async def validate_model(self, model: str) -> None:
        """Raise `invalid_payload` for a model the server does not know."""

    async def on_room_deleted(self, room_id: str) -> None:
        """The room is being deleted: end its replies."""

    async def stop(self, principal: Principal, room: Room, message_id: str | None) -> str:
        """Stop the reply in progress; the stopped message id."""

    async def regenerate(self, principal: Principal, room: Room, message_id: str) -> None:
        """Answer a user message again."""


class NoHooks:
    """Rooms without an assistant."""

    async def admit_reply(
        self, room: Room, principal: Principal, content: str, options: ReplyOptions,
        file_ids: Sequence[str] = (),
    ) -> ReplyTicket | None:
        return None

    def start_early(
        self, ticket: Any, room: Room, question: dict[str, Any], options: ReplyOptions
    ) -> Any | None:
        return None

    def start_reply(
        self, ticket: Any, room: Room, message: Message, options: ReplyOptions,
        early: Any | None = None,
    ) -> None:
        return None

    async def active_streams(self, room_id: str) -> list[dict[str, Any]]:
        return []

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
