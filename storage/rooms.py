"""Rooms (chats) in MongoDB: membership, settings and the per-room sequence counter."""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from app.errors import CONFLICT, AppError, invalid
from app.models import WS_SESSION, Member, Room
from storage.control import ControlBus
from storage.mongo import Mongo, update_and_read

log = logging.getLogger(__name__)
CACHE_SECONDS = 5.0  # a cached room is read again after this long, changed or not
LOCAL_CACHE_SECONDS = 300.0  # one node: every change is heard, nothing can be missed
CACHE_ROOMS = 10_000
ROOM_CHANGED = "room_changed"

Doc = dict[str, Any]


def room_from_doc(doc: Doc) -> Room:
    """A Room with its effective assistant mode (auto: always alone, mention when shared)."""
    mode = doc.get("assistant_mode") or ("always" if len(doc["members"]) <= 1 else "mention")
    return Room(
        room_id=doc["_id"],
        title=doc["title"],
        owner_id=doc["owner_id"],
        room_type=doc["room_type"],
        model=doc.get("model"),
        assistant_mode=mode,
        system_prompt=doc.get("system_prompt", ""),
        visibility=doc["visibility"],
        members=[Member(**m) for m in doc["members"]],
        tools=doc.get("tools") or [],
        last_seq=doc.get("last_seq", 0),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def encode_cursor(when: datetime, room_id: str) -> str:
    """An opaque page cursor for (last activity, room id)."""
    raw = f"{when.isoformat()}|{room_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (last activity, room id) of a cursor; invalid_payload if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, room_id = raw.split("|", 1)
        return datetime.fromisoformat(when), room_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("cursor: not a valid page cursor") from exc


class RoomStore:
    """CRUD on room documents; membership lives in the room document.

    `cached` serves the checks every message makes (membership, role, settings) from
    memory. Every change made through this store drops the room from the cache on every
    node (the control bus); with Redis unreachable nothing is cached, and an entry is
    read again after CACHE_SECONDS whatever happens. A cached room's `last_seq` is not
    kept up to date: use `get` where it matters.
    """

    def __init__(self, mongo: Mongo, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._rooms = mongo.rooms
        self._cache: OrderedDict[str, tuple[float, Room]] = OrderedDict()
        self._cache_seconds = cache_seconds
        self._generation = 0  # bumped by every change: a read that raced one is not kept
        self._bus: ControlBus | None = None

    def attach(self, bus: ControlBus) -> None:
        """Tell the other nodes about changes, and hear theirs."""
        self._bus = bus
        bus.subscribe(self._on_command)
        if not hasattr(bus, "connected"):  # in-process bus: no command is ever lost
            self._cache_seconds = max(self._cache_seconds, LOCAL_CACHE_SECONDS)

    async def insert(self, doc: Doc) -> Room:
        """Store a new room document; `conflict` if its id is taken."""
        try:
            await self._rooms.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AppError(CONFLICT, "a room with this id already exists") from exc
        return room_from_doc(doc)

    async def get(self, room_id: str) -> Room | None:
        """The room, or None."""
        doc = await self._rooms.find_one({"_id": room_id})
        return room_from_doc(doc) if doc else None

    async def cached(self, room_id: str) -> Room | None:
        """The room from this node's cache when it is fresh; else read (and cached)."""
        bus = self._bus
        if bus is None or not getattr(bus, "connected", True):
            self._cache.clear()  # changes may go unheard: read every time
            return await self.get(room_id)
        now = time.monotonic()
        entry = self._cache.get(room_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        generation = self._generation
        room = await self.get(room_id)
        if room is not None and generation == self._generation:
            self._cache[room_id] = (now + self._cache_seconds, room)
            self._cache.move_to_end(room_id)
            while len(self._cache) > CACHE_ROOMS:
                self._cache.popitem(last=False)
        return room

    def forget(self, room_id: str) -> None:
        """Drop a room from this node's cache."""
        self._generation += 1
        self._cache.pop(room_id, None)

    async def changed(self, room_id: str) -> None:
        """A room changed: drop it from every node's cache."""
        self.forget(room_id)
        if self._bus is None:
            return
        try:
            await self._bus.publish({"type": ROOM_CHANGED, "room_id": room_id})
        except Exception as exc:  # the change is made; other nodes re-read within seconds
            log.warning("room %s changed but the other nodes were not told: %r", room_id, exc)

    async def _on_command(self, command: dict[str, Any]) -> None:
        if command.get("type") == ROOM_CHANGED:
            self.forget(str(command.get("room_id")))

    async def list_for_user(
        self, user_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Room], str | None]:
        """The user's rooms, newest activity first, and the next page's cursor."""
        # Plain-WebSocket sessions are rooms too, but not chats the user made.
        return await self._page(
            {"member_ids": user_id, "kind": {"$ne": WS_SESSION}}, cursor, limit
        )

    async def list_public(self, cursor: str | None, limit: int) -> tuple[list[Room], str | None]:
        """Public rooms, newest activity first, and the next page's cursor."""
        return await self._page({"visibility": "public"}, cursor, limit)

    async def _page(
        self, query: Doc, cursor: str | None, limit: int
    ) -> tuple[list[Room], str | None]:
        if cursor:
            when, rid = decode_cursor(cursor)
            query["$or"] = [
                {"last_activity_at": {"$lt": when}},
                {"last_activity_at": when, "_id": {"$lt": rid}},
            ]
        docs = await (
            self._rooms.find(query)
            .sort([("last_activity_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
            .to_list()
        )
        next_cursor = None
        if len(docs) > limit:
            docs = docs[:limit]
            last = docs[-1]
            next_cursor = encode_cursor(last["last_activity_at"], last["_id"])
        return [room_from_doc(d) for d in docs], next_cursor

    async def update(self, room_id: str, fields: Doc) -> Room | None:
        """Set fields on a room; the updated room."""
        doc = await update_and_read(self._rooms, {"_id": room_id}, {"$set": fields})
        await self.changed(room_id)
        return room_from_doc(doc) if doc else None

    async def add_member(self, room_id: str, member: Member, now: datetime) -> Room | None:
        """Add a member unless already present; the updated room."""
        doc = await update_and_read(
            self._rooms, {"_id": room_id, "member_ids": {"$ne": member.user_id}},
            {
                "$push": {"members": member.model_dump()},
                "$addToSet": {"member_ids": member.user_id},
                "$set": {"updated_at": now},
            },
        )
        await self.changed(room_id)
        return room_from_doc(doc) if doc else None

    async def set_member_role(
        self, room_id: str, user_id: str, role: str, now: datetime
    ) -> Room | None:
        """Change a member's role; the updated room (None if not a member)."""
        doc = await update_and_read(
            self._rooms, {"_id": room_id, "member_ids": user_id},
            {"$set": {"members.$[m].role": role, "updated_at": now}},
            array_filters=[{"m.user_id": user_id}],
        )
        await self.changed(room_id)
        return room_from_doc(doc) if doc else None

    async def remove_member(self, room_id: str, user_id: str, now: datetime) -> Room | None:
        """Remove a member; the updated room."""
        doc = await update_and_read(
            self._rooms, {"_id": room_id},
            {
                "$pull": {"members": {"user_id": user_id}, "member_ids": user_id},
                "$set": {"updated_at": now},
            },
        )
        await self.changed(room_id)
        return room_from_doc(doc) if doc else None

    async def delete(self, room_id: str) -> bool:
        """Delete the room document."""
        res = await self._rooms.delete_one({"_id": room_id})
        await self.changed(room_id)
        return res.deleted_count == 1
