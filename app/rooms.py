"""Rooms: membership, presence, messages. The one service behind Socket.IO, REST and WS."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from app.config import LimitsSettings
from app.errors import (
    CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    AppError,
    invalid,
    not_found,
    rate_limited,
)
from app.events import Emitter, room_channel
from app.ids import new_id
from app.limits import check_message_chars
from app.models import WS_SESSION, Author, Member, Message, Principal, Role, Room, User, utcnow
from app.room_hooks import InviteBook, ReplyOptions, RoomHooks
from app.schemas import CreateRoom, Invite, RoomSettings, SendMessage
from storage.messages import MessageStore, client_message_id
from storage.presence import PresenceStore
from storage.ratelimit import RateLimiter
from storage.rooms import RoomStore
from storage.users import UserStore

log = logging.getLogger(__name__)
# What GET /session_id hands out (new_id()): any other unknown id is just not found.
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


FilesCheck = Callable[[str, list[str]], Awaitable[bool]]
# A voice room's `{speaker, assistant}` for join_room (who holds the floor right now).
VoiceStateReader = Callable[[str], Awaitable[dict[str, Any]]]
RoomCascade = Callable[[str], Awaitable[None]]
MESSAGE = ReplyOptions()


async def no_files(room_id: str, file_ids: list[str]) -> bool:
    """The files check of a room service without files: only an empty list passes."""
    return not file_ids


class ToolCatalog(Protocol):
    """The tools a room may enable (app.tools.registry.ToolRegistry)."""

    def check_enable(self, names: Sequence[str]) -> list[str]:
        """The names deduplicated; `invalid_payload` naming unknown or unconfigured ones."""
        ...


class NoTools:
    """A node without tools: enabling any is refused."""

    def check_enable(self, names: Sequence[str]) -> list[str]:
        if names:
            raise invalid(f"tools: no tools on this server ({', '.join(names)})")
        return []


def author_of(principal: Principal) -> Author:
    """The author record of a caller."""
    return Author(user_id=principal.user_id, name=principal.name)


class RoomService:
    """Everything a person does with rooms."""

    def __init__(
        self,
        limits: LimitsSettings,
        rooms: RoomStore,
        messages: MessageStore,
        users: UserStore,
        presence: PresenceStore,
        limiter: RateLimiter,
        emitter: Emitter,
        invites: InviteBook,
        hooks: RoomHooks,
        files_of_room: FilesCheck,
        on_delete: Sequence[RoomCascade] = (),
        tools: ToolCatalog | None = None,
        voice_state: VoiceStateReader | None = None,
    ) -> None:
        self._limits = limits
        self._voice_state = voice_state
        self._tools: ToolCatalog = tools or NoTools()
        self._rooms = rooms
        self._messages = messages
        self._users = users
        self._presence = presence
        self._limiter = limiter
        self.emitter = emitter
        self._invites = invites
        self._hooks = hooks
        # Whether every id is a file of the room (files attached to a message).
        self._files_of_room = files_of_room
        # Called with the room id before a room is deleted (files, blobs, vectors go with it).
        self._on_delete = tuple(on_delete)

    # -- access ---------------------------------------------------------------------------

    async def load(
        self, principal: Principal, room_id: str, *, write: bool = False, owner: bool = False,
        cached: bool = False,
    ) -> Room:
        """The room if the caller may see it; `not_found` / `forbidden` otherwise.

        `cached`: from this node's room cache (hot paths; its `last_seq` may be behind).
        """
        if cached:
            room = await self._rooms.cached(room_id)
        else:
            await self._messages.settle()  # its last_seq as of the last message stored
            room = await self._rooms.get(room_id)
        if room is None:
            raise not_found("room")
        member = room.member(principal.user_id)
        if member is None:
            if room.visibility != "public":
                raise not_found("room")
            if owner or write:
                raise AppError(FORBIDDEN, "join the room first")
            return room
        if owner and member.role != "owner":
            raise AppError(FORBIDDEN, "only the room owner can do this")
        if write and member.role == "viewer":
            raise AppError(FORBIDDEN, "viewers cannot send messages")
        return room

    def _check_settings(self, req: RoomSettings) -> dict[str, Any]:
        fields = req.model_dump(exclude_unset=True, exclude={"room_id", "room_type"})
        if req.title is not None and len(req.title) > self._limits.max_title_chars:
            raise AppError(PAYLOAD_TOO_LARGE, f"title: at most {self._limits.max_title_chars}")
        if req.title is not None and not req.title.strip():
            raise invalid("title: must not be empty")
        prompt = req.system_prompt
        if prompt is not None and len(prompt) > self._limits.max_system_prompt_chars:
            raise AppError(
                PAYLOAD_TOO_LARGE,
                f"system_prompt: at most {self._limits.max_system_prompt_chars} characters",
            )
        if req.tools is not None:
            fields["tools"] = self._tools.check_enable(req.tools)
        return fields

    # -- rooms ----------------------------------------------------------------------------

    async def session_room(self, principal: Principal, room_id: str) -> Room:
        """A plain-WebSocket session's room, created by its first use.

        `GET /session_id` only hands out an id (a GET changes nothing); the room exists
        once a WebSocket opens with it. Someone else's room stays `not_found`.
        """
        try:
            return await self.load(principal, room_id, write=True)
        except AppError as exc:
            if exc.code != NOT_FOUND or not _SESSION_ID.fullmatch(room_id):
                raise
        try:
            return await self.create_room(
                principal, CreateRoom(title="WebSocket session"), kind=WS_SESSION,
                room_id=room_id,
            )
        except AppError as exc:  # created meanwhile: the caller's (two tabs) or not
            if exc.code != CONFLICT:
                raise
            return await self.load(principal, room_id, write=True)

    async def create_room(
        self, principal: Principal, req: CreateRoom, sid: str | None = None,
        *, kind: str | None = None, room_id: str | None = None,
    ) -> Room:
        """A new room owned by the caller (joined on `sid` when given).

        `kind`: WS_SESSION for a plain-WebSocket session (not in the room list).
        """
        fields = self._check_settings(req)
        if req.model:
            await self._hooks.validate_model(req.model)
        now = utcnow()
        doc: dict[str, Any] = {
            "_id": room_id or new_id(),
            "title": (req.title or "New chat").strip(),
            "owner_id": principal.user_id,
            "room_type": req.room_type,
            "model": fields.get("model"),
            "assistant_mode": fields.get("assistant_mode"),
            "system_prompt": fields.get("system_prompt") or "",
            "visibility": fields.get("visibility") or "private",
            "tools": fields.get("tools") or [],
            "members": [{"user_id": principal.user_id, "name": principal.name, "role": "owner"}],
            "member_ids": [principal.user_id],
            "last_seq": 0,
            "created_at": now,
            "updated_at": now,
            "last_activity_at": now,
        }
        if kind is not None:
            doc["kind"] = kind
        room = await self._rooms.insert(doc)
        if sid is not None:
            await self._enter(principal, room, sid)
        await self.emitter.room_created(principal.user_id, room)
        return room

    async def update_room(self, principal: Principal, room_id: str, req: RoomSettings) -> Room:
        """Change a room's settings (owner only)."""
        await self.load(principal, room_id, owner=True)
        fields = self._check_settings(req)
        if fields.get("model"):
            await self._hooks.validate_model(fields["model"])
        if "title" in fields and fields["title"] is None:
            del fields["title"]
        if "visibility" in fields and fields["visibility"] is None:
            del fields["visibility"]
        if "system_prompt" in fields and fields["system_prompt"] is None:
            fields["system_prompt"] = ""
        if "tools" in fields and fields["tools"] is None:
            fields["tools"] = []
        fields["updated_at"] = utcnow()
        room = await self._rooms.update(room_id, fields)
        if room is None:
            raise not_found("room")
        await self.emitter.room_updated(room)
        return room

    async def delete_room(self, principal: Principal, room_id: str) -> None:
        """Delete a room and everything in it (owner only)."""
        await self.load(principal, room_id, owner=True)
        await self._hooks.on_room_deleted(room_id)
        for cascade in self._on_delete:
            await cascade(room_id)
        await self._messages.delete_room(room_id)
        await self._rooms.delete(room_id)
        await self._invites.forget_room(room_id)
        await self.emitter.room_deleted(room_id)

    async def list_rooms(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[Room], str | None]:
        """The caller's rooms, newest activity first."""
        await self._messages.settle()
        return await self._rooms.list_for_user(principal.user_id, cursor, limit)

    # -- presence -------------------------------------------------------------------------

    async def _enter(self, principal: Principal, room: Room, sid: str) -> None:
        await self.emitter.transport.enter_room(sid, room_channel(room.room_id))
        if await self._presence.add(room.room_id, principal.user_id, sid):
            await self.emitter.user_joined(room.room_id, author_of(principal), skip_sid=sid)

    async def join_room(
        self, principal: Principal, room_id: str, sid: str, since_seq: int | None
    ) -> dict[str, Any]:
        """Enter a room: its state, who is online, and the messages the caller missed."""
        room = await self.load(principal, room_id)
        if room.member(principal.user_id) is None:
            if len(room.members) >= self._limits.max_members:
                raise AppError(CONFLICT, "the room is full")
            member = Member(user_id=principal.user_id, name=principal.name, role="member")
            room = await self._rooms.add_member(room_id, member, utcnow()) or room
            await self.emitter.room_updated(room)
        await self._enter(principal, room, sid)
        if since_seq is None:
            messages = await self._messages.page(room_id, limit=50)
        else:
            messages = await self._messages.page(
                room_id, after_seq=since_seq, limit=self._limits.replay_max_messages
            )
        online = await self._presence.online(room_id)
        members = [m.model_dump() for m in room.members]
        await self.emitter.room_joined(sid, room, members, online)
        result: dict[str, Any] = {
            "room": room.model_dump(mode="json"),
            "members": members,
            "online": online,
            "messages": [m.model_dump(mode="json") for m in messages],
        }
        if room.room_type == "openai_realtime" and self._voice_state is not None:
            result["voice"] = await self._voice_state(room_id)
        active = await self._hooks.active_streams(room_id)
        if active:
            # The oldest one; with several (two nodes answering at once) all of them too.
            result["active_stream"] = active[0]
            result["active_streams"] = active
        return result

    async def leave_room(self, principal: Principal, room_id: str, sid: str) -> None:
        """Leave a room on this socket (the user stays a member)."""
        await self.emitter.transport.leave_room(sid, room_channel(room_id))
        if await self._presence.remove(room_id, principal.user_id, sid):
            await self.emitter.user_left(room_id, author_of(principal))

    async def typing(self, principal: Principal, room_id: str, sid: str, is_typing: bool) -> None:
        """Tell the others in the room that the caller is typing."""
        await self.load(principal, room_id, write=True, cached=True)
        await self.emitter.user_typing(room_id, principal.user_id, is_typing, sid)

    # -- members --------------------------------------------------------------------------

    async def invite(self, principal: Principal, req: Invite) -> Room:
        """Add a user by email (owner only); unknown emails join when they sign up."""
        room = await self.load(principal, req.room_id, owner=True)
        if not await self._limiter.hit(
            f"invite:{principal.user_id}", self._limits.invites_per_hour, 3600
        ):
            raise rate_limited("too many invitations this hour; try again later", 3600)
        user = await self._users.by_email(req.email)
        if user is None:
            await self._invites.add(req.email, req.room_id, req.role)
            return room
        return await self.add_member(room, user, req.role)

    async def add_member(self, room: Room, user: User, role: str) -> Room:
        """Make `user` a member and tell them and the room."""
        if room.member(user.user_id) is not None:
            raise AppError(CONFLICT, "already a member of this room")
        if len(room.members) >= self._limits.max_members:
            raise AppError(CONFLICT, "the room is full")
        member = Member(user_id=user.user_id, name=user.name, role=role)
        updated = await self._rooms.add_member(room.room_id, member, utcnow())
        if updated is None:
            raise AppError(CONFLICT, "already a member of this room")
        await self.emitter.room_updated(updated)
        await self.emitter.room_invited(user.user_id, updated)
        return updated

    async def accept_invites(self, user: User) -> None:
        """Turn the pending invitations of a new account's email into memberships."""
        for room_id, role in await self._invites.take(user.email):
            room = await self._rooms.get(room_id)
            if room is not None and room.member(user.user_id) is None:
                await self.add_member(room, user, role)

    async def remove_member(self, principal: Principal, room_id: str, user_id: str) -> Room:
        """Remove a member (owner), or leave for good (yourself); their sockets leave the room."""
        room = await self.load(principal, room_id, owner=user_id != principal.user_id)
        if user_id == room.owner_id:
            raise invalid("user_id: the owner cannot be removed (delete the room instead)")
        gone = room.member(user_id)
        if gone is None:
            raise not_found("member")
        updated = await self._rooms.remove_member(room_id, user_id, utcnow())
        if updated is None:
            raise not_found("room")
        await self._presence.clear_user(room_id, user_id)
        await self.emitter.transport.leave_user_sockets(user_id, room_channel(room_id))
        await self.emitter.user_left(room_id, Author(user_id=user_id, name=gone.name))
        await self.emitter.room_updated(updated)
        await self.emitter.room_deleted(room_id, user_id=user_id)
        return updated

    async def update_member(
        self, principal: Principal, room_id: str, user_id: str, role: Role
    ) -> Room:
        """Change a member's role (owner only): `member` writes, `viewer` reads."""
        room = await self.load(principal, room_id, owner=True)
        if user_id == room.owner_id:
            raise invalid("user_id: the owner's role cannot be changed")
        if room.member(user_id) is None:
            raise not_found("member")
        updated = await self._rooms.set_member_role(room_id, user_id, role, utcnow())
        if updated is None:
            raise not_found("member")
        await self.emitter.room_updated(updated)
        return updated

    async def list_public(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[Room], str | None]:
        """Public rooms anyone may join, newest activity first."""
        await self._messages.settle()
        return await self._rooms.list_public(cursor, limit)

    # -- messages -------------------------------------------------------------------------

    async def send_message(
        self, principal: Principal, req: SendMessage, options: ReplyOptions = MESSAGE
    ) -> Message:
        """Store a user message (idempotent on client_msg_id), broadcast it, start its reply.

        The reply (if the message asks for one) is admitted before anything is stored:
        refused with `conflict` / `rate_limited`, the message is not stored either.
        """
        check_message_chars(len(req.content), self._limits, "content")
        if not req.content.strip() and not req.file_ids:
            raise invalid("content: must not be empty")
        room = await self.load(principal, req.room_id, write=True, cached=True)
        if req.file_ids and not await self._files_of_room(req.room_id, req.file_ids):
            raise not_found("file")
        # A retry with a known client_msg_id is found by the insert (its _id comes from it),
        # not by a read before every message; only a refusal looks for it first.
        try:
            ticket = await self._hooks.admit_reply(
                room, principal, req.content, options, req.file_ids
            )
        except AppError:
            existing = await self._sent_before(principal, req)
            if existing is not None:
                return existing
            raise
        early: list[Any] = []  # the reply's model asked while the question is stored

        def start_early(doc: dict[str, Any]) -> None:
            if ticket is not None:
                early.append(self._hooks.start_early(ticket, room, doc, options))

        def abandon() -> None:
            for started in early:
                if started is not None:
                    started.abandon()

        try:
            message, created = await self._store_message(principal, req,
                                                          before_insert=start_early)
        except BaseException:
            abandon()
            if ticket is not None:
                ticket.release()
            raise
        if not created:  # a retry, or a concurrent retry stored it first
            abandon()
            if ticket is not None:
                ticket.release()
            return message
        try:
            await self.emitter.message_received(message)
        finally:
            # Stored means answered, whatever happens to this call from here on.
            if ticket is not None:
                self._hooks.start_reply(ticket, room, message, options,
                                        early[0] if early else None)
        return message

    async def post_voice_turn(self, principal: Principal, room_id: str, transcript: str) -> Message:
        """Store a spoken turn (`input: "voice"`, its transcript as content) and broadcast it.

        Its reply was admitted when the speaker took the floor; the caller starts it.
        """
        check_message_chars(len(transcript), self._limits, "transcript")
        await self.load(principal, room_id, write=True)
        req = SendMessage(room_id=room_id, content=transcript)
        message, _ = await self._store_message(principal, req, voice=True)
        await self.emitter.message_received(message)
        return message

    async def _sent_before(self, principal: Principal, req: SendMessage) -> Message | None:
        if req.client_msg_id is None:
            return None
        return await self._messages.by_client_msg_id(
            req.room_id, principal.user_id, req.client_msg_id)

    async def _store_message(
        self, principal: Principal, req: SendMessage, *, voice: bool = False,
        before_insert: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[Message, bool]:
        if not await self._limiter.hit(
            f"msg:{principal.user_id}", self._limits.messages_per_minute, 60
        ):
            existing = await self._sent_before(principal, req)
            if existing is not None:
                return existing, False
            raise rate_limited("too many messages; wait a minute", 60)
        if req.reply_to is not None:
            target = await self._messages.get(req.reply_to)
            if target is None or target.room_id != req.room_id:
                raise not_found("reply_to message")
        doc: dict[str, Any] = {
            "_id": new_id() if req.client_msg_id is None else client_message_id(
                req.room_id, principal.user_id, req.client_msg_id),
            "room_id": req.room_id,
            "role": "user",
            "author": author_of(principal).model_dump(),
            "content": req.content,
            "file_ids": req.file_ids,
            "reply_to": req.reply_to,
            "status": "complete",
            "created_at": utcnow(),
        }
        if req.client_msg_id is not None:
            doc["client_msg_id"] = req.client_msg_id
        if voice:
            doc["input"] = "voice"
        if before_insert is not None:
            before_insert(doc)
        return await self._messages.append(doc)

    async def stop_generation(
        self, principal: Principal, room_id: str, message_id: str | None
    ) -> str:
        """Stop the assistant's reply in a room."""
        room = await self.load(principal, room_id)
        return await self._hooks.stop(principal, room, message_id)

    async def regenerate(self, principal: Principal, room_id: str, message_id: str) -> None:
        """A new assistant reply to the same user message."""
        room = await self.load(principal, room_id, write=True)
        await self._hooks.regenerate(principal, room, message_id)

    async def list_messages(
        self,
        principal: Principal,
        room_id: str,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
    ) -> list[Message]:
        """A page of a room's history."""
        await self.load(principal, room_id)
        return await self._messages.page(
            room_id, before_seq=before_seq, after_seq=after_seq, limit=limit
        )
