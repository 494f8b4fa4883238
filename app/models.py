"""Plain typed records that services take and return; transports serialise them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["owner", "member", "viewer"]
AssistantMode = Literal["always", "mention", "off"]
Visibility = Literal["private", "public"]
RoomType = Literal["aisuite", "openai_realtime"]
MessageRole = Literal["user", "assistant", "system"]
MessageStatus = Literal["streaming", "complete", "cancelled", "error"]
# Rooms made for the plain WebSocket (`GET /session_id`): kept out of the room list.
WS_SESSION = "ws_session"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, truncated to milliseconds like BSON."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class User(_Record):
    user_id: str
    email: str
    name: str
    is_admin: bool = False
    created_at: datetime


class Principal(_Record):
    """Who is calling: the verified claims of an access token."""

    user_id: str
    name: str
    email: str
    is_admin: bool = False
    expires_at: float = 0.0
    # The user's token version when the token was issued (a newer one ends the session).
    token_version: int = 0
    # When the session's log-in happened (unix time; refreshes keep it).
    auth_time: float = 0.0


class Author(_Record):
    user_id: str
    name: str


class Member(_Record):
    user_id: str
    name: str
    role: Role


class Room(_Record):
    room_id: str
    title: str
    owner_id: str
    room_type: RoomType
    model: str | None
    assistant_mode: AssistantMode
    system_prompt: str
    visibility: Visibility
    members: list[Member]
    tools: list[str] = []
    last_seq: int
    created_at: datetime
    updated_at: datetime

    def member(self, user_id: str) -> Member | None:
        """The member record of `user_id`, if they belong to the room."""
        return next((m for m in self.members if m.user_id == user_id), None)


class Usage(_Record):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0


class Source(_Record):
    document_id: str
    filename: str
    chunk_index: int
    score: float
    snippet: str


class ToolCallRecord(_Record):
    """A tool call the assistant made while replying, as the final message keeps it."""

    call_id: str
    name: str
    arguments: str
    status: Literal["running", "done", "error"]
    result: str | None = None


class Message(_Record):
    message_id: str
    room_id: str
    seq: int
    role: MessageRole
    author: Author | None
    content: str
    file_ids: list[str] = []
    reply_to: str | None = None
    status: MessageStatus = "complete"
    model: str | None = None
    usage: Usage | None = None
    sources: list[Source] | None = None
    tool_calls: list[ToolCallRecord] | None = None
    # "voice" for a spoken turn of a voice room (its content is the transcript).
    input: Literal["text", "voice"] | None = None
    created_at: datetime
