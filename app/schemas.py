"""Request payloads shared by the Socket.IO events and the REST routes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from app.errors import invalid
from app.models import AssistantMode, RoomType, Visibility

T = TypeVar("T", bound=BaseModel)

Id = Field(min_length=1, max_length=128)
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise PydanticCustomError("email", "must be an email address such as ada@example.com")
    return value


# Sign-up, invitations and `parlour users create` accept the same addresses.
Email = Annotated[
    str,
    Field(min_length=3, max_length=320, json_schema_extra={"format": "email"}),
    AfterValidator(_email),
]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, str_strip_whitespace=False)


def parse(model: type[T], data: Any) -> T:
    """Validate `data`; `invalid_payload` naming the first bad field otherwise."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise invalid("payload: must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "payload"
        raise invalid(f"{field}: {first['msg']}") from exc


class RoomSettings(Payload):
    title: str | None = None
    model: str | None = None
    assistant_mode: AssistantMode | None = None
    system_prompt: str | None = None
    visibility: Visibility | None = None
    # Tool names the assistant may call in this room (see GET /api/v1/tools).
    tools: list[ToolName] | None = Field(None, max_length=64)


class CreateRoom(RoomSettings):
    room_type: RoomType = "aisuite"


class UpdateRoom(RoomSettings):
    room_id: str = Id


class RoomRef(Payload):
    room_id: str = Id


class JoinRoom(RoomRef):
    since_seq: int | None = Field(None, ge=0)


class SendMessage(RoomRef):
    content: str
    client_msg_id: str | None = Field(None, min_length=1, max_length=128)
    file_ids: list[str] = Field(default_factory=list, max_length=20)
    reply_to: str | None = None


class Typing(RoomRef):
    is_typing: bool


class Invite(RoomRef):
    email: Email
    role: Literal["member", "viewer"] = "member"


class RemoveMember(RoomRef):
    user_id: str = Id


class UpdateMember(RoomRef):
    user_id: str = Id
    role: Literal["member", "viewer"]


class StopGeneration(RoomRef):
    message_id: str | None = None


class VoiceChunk(RoomRef):
    # A binary Socket.IO attachment (bytes); text (e.g. base64) is refused.
    audio: Annotated[bytes, Strict()]


class Regenerate(RoomRef):
    message_id: str = Id


class AuthRefresh(Payload):
    token: str = Field(min_length=1)


class Signup(Payload):
    email: Email
    password: str
    name: str = Field(min_length=1, max_length=100)


class Login(Payload):
    email: str = Field(min_length=1, max_length=320)
    password: str


class ChangePassword(Payload):
    current_password: str
    new_password: str


class TokenForm(Payload):
    """OAuth2 password grant: errors name the fields as the client sent them."""

    username: str = Field(min_length=1, max_length=320)
    password: str


class RefreshRequest(Payload):
    refresh_token: str | None = None
