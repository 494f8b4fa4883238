"""Messages written in groups with a gap-free per-room seq, without a transaction each.

Every node remembers the last seq it knows per room and gives a new message the next
one. The unique (room_id, seq) index is the guard between nodes: a message whose seq
another node took first fails with a duplicate key; the room's last seq is read again
and the message takes the next free one. Gaps cannot appear: one writer task per node
inserts what was appended meanwhile in a single *ordered* insert_many, so a seq is only
written when the one before it was, and a failure stops the rest of the group (which
is retried), and the appends are answered: one database round trip per group, not
per message. The rooms' `last_seq` / `last_activity_at` follow in one bulk write for
every room written in the last ROOMS_DELAY seconds (`settle()` writes them at once,
for the reads that show them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, OperationFailure

from app.errors import UNAVAILABLE, AppError
from app.models import utcnow

log = logging.getLogger(__name__)

Doc = dict[str, Any]
MAX_GROUP = 256  # messages per insert_many
MAX_WAITING = 10_000  # appends waiting for the writer; more is refused (unavailable)
MAX_ATTEMPTS = 16  # seq collisions with other nodes before an append gives up
KNOWN_ROOMS = 10_000  # rooms whose last seq is remembered
ROOMS_DELAY = 1.0  # seconds the rooms' last_seq / last_activity_at may lag behind


@dataclass(slots=True)
class _Append:
    doc: Doc
    future: asyncio.Future[tuple[Doc, bool]]
    attempts: int = field(default=0)


class SeqWriter:
    """Appends to the `messages` collection; one writer task, started on demand."""

    def __init__(self, messages: AsyncCollection[Doc], rooms: AsyncCollection[Doc]) -> None:
        self._messages = messages
        self._rooms = rooms
        self._waiting: deque[_Append] = deque()
        self._last: OrderedDict[str, int] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._dirty: dict[str, int] = {}  # room → highest seq stored, not yet on the room
        self._rooms_task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None  # the follower's write, if out

    async def append(self, doc: Doc) -> tuple[Doc, bool]:
        """The stored document (with its seq) and whether it is new."""
        if len(self._waiting) >= MAX_WAITING:
            raise AppError(UNAVAILABLE, "the server is busy storing messages; try again")
        future: asyncio.Future[tuple[Doc, bool]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Append(doc, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="seq-writer")
        return await future

    async def close(self) -> None:
        """Wait for the writer to store what it was given, and the rooms to follow."""
        if self._task is not None:
            await asyncio.wait({self._task})
        await self.settle()
        if self._rooms_task is not None:
            self._rooms_task.cancel()
            await asyncio.wait({self._rooms_task})

    async def settle(self) -> None:
        """Bring the rooms' last_seq / last_activity_at up to date now."""
        writing = self._writing  # what the follower took before now is written first
        highest, self._dirty = self._dirty, {}
        if highest:
            await self._advance_rooms_logged(highest)
        if writing is not None and not writing.done():
            await asyncio.wait({writing})

    def known_last(self, room_id: str) -> int | None:
        """The room's last seq as this node knows it (None: not known here)."""
        return self._last.get(room_id)

    def forget(self, room_id: str) -> None:
        """Read the room's last seq again before its next message (room deleted)."""
        self._last.pop(room_id, None)

    async def _run(self) -> None:
        while self._waiting:
            group: list[_Append] = []
            while self._waiting and len(group) < MAX_GROUP:
                item = self._waiting.popleft()
                if not item.future.done():  # its caller went away before it was written
                    group.append(item)
            if not group:
                continue
            try:
                await self._write(group)
            except Exception as exc:
                # Unknown outcome (the database went away mid-write): these appends fail
                # and their rooms' last seq is read again.
                for item in group:
                    self._last.pop(item.doc["room_id"], None)
                    if not item.future.done():
                        item.future.set_exception(exc)

    async def last_seq(self, room_id: str) -> int:
        """The room's last seq as this node knows it; read (and kept) if it knows none."""
        known = self._last.get(room_id)
        if known is not None:
            return known
        seq = await self._read_last(room_id)
        return self._last.setdefault(room_id, seq)  # unless the writer learnt it meanwhile

    async def _read_last(self, room_id: str) -> int:
        """Read the room's last seq: its highest from the seqs at or above the room's.

        The room's `last_seq` trails the messages by about ROOMS_DELAY and never passes
        them ($max), so few messages are above it. Not the room's messages sorted whole:
        SecantusDB reads every one of them to find the highest (755 ms in a room of
        30,000: `python -m bench.db_scaling`).
        """
        room = await self._rooms.find_one({"_id": room_id}, projection={"last_seq": 1})
        floor = int(room.get("last_seq") or 0) if room else 0
        query: Doc = {"room_id": room_id, "seq": {"$gte": floor}} if floor else {"room_id": room_id}
        doc = await self._messages.find_one(query, projection={"seq": 1},
                                            sort=[("seq", DESCENDING)])
        if doc is None and floor:  # not expected: the room counts more than is stored
            doc = await self._messages.find_one(
                {"room_id": room_id}, projection={"seq": 1}, sort=[("seq", DESCENDING)])
        return int(doc["seq"]) if doc else 0

    async def _learn_last(self, room_id: str) -> None:
        self._last[room_id] = await self._read_last(room_id)

    async def _write(self, group: list[_Append]) -> None:
        unknown = {item.doc["room_id"] for item in group} - self._last.keys()
        if unknown:
            await asyncio.gather(*(self._learn_last(room_id) for room_id in unknown))
        docs: list[Doc] = []
        for item in group:
            room_id = item.doc["room_id"]
            seq = self._last[room_id] + 1
            self._last[room_id] = seq
            self._last.move_to_end(room_id)
            docs.append({**item.doc, "seq": seq})
        while len(self._last) > KNOWN_ROOMS:
            self._last.popitem(last=False)

        failed_at, error = len(docs), None
        try:
            await self._messages.insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if not errors:
                raise
            failed_at, error = int(errors[0]["index"]), errors[0]

        stored = docs[:failed_at]
        for item, doc in zip(group, stored, strict=False):
            self._dirty[doc["room_id"]] = doc["seq"]
            if not item.future.done():
                item.future.set_result((doc, True))
        if stored and (self._rooms_task is None or self._rooms_task.done()):
            self._rooms_task = asyncio.create_task(self._follow(), name="seq-rooms")
        if error is not None:
            await self._after_failure(group[failed_at:], error)

    async def _follow(self) -> None:
        """The rooms follow their messages, at most once every ROOMS_DELAY seconds.

        Under constant load every room written meanwhile is set in one bulk write a
        second, not one per group of messages.
        """
        while True:
            await asyncio.sleep(ROOMS_DELAY)
            highest, self._dirty = self._dirty, {}
            if not highest:
                return
            self._writing = writing = asyncio.get_running_loop().create_future()
            try:
                await self._advance_rooms_logged(highest)
            finally:
                writing.set_result(None)

    async def _advance_rooms_logged(self, highest: dict[str, int]) -> None:
        try:
            await self._advance_rooms(highest)
        except Exception as exc:  # the next message of each room sets it again
            log.warning("updating the last seq of %d rooms failed: %r", len(highest), exc)

    async def _advance_rooms(self, highest: dict[str, int]) -> None:
        """Set the rooms' last seq and activity; delete the messages of deleted rooms."""
        now = utcnow()
        result = await self._rooms.bulk_write([
            UpdateOne({"_id": room_id},
                      {"$max": {"last_seq": seq}, "$set": {"last_activity_at": now}})
            for room_id, seq in highest.items()
        ], ordered=False)
        if result.matched_count == len(highest):
            return
        found = await self._rooms.find(
            {"_id": {"$in": list(highest)}}, projection={"_id": 1}
        ).to_list()
        gone = set(highest) - {doc["_id"] for doc in found}
        if gone:  # deleted while we wrote: their messages go too
            await self._messages.delete_many({"room_id": {"$in": list(gone)}})
            for room_id in gone:
                self.forget(room_id)

    async def _after_failure(self, rest: list[_Append], error: dict[str, Any]) -> None:
        """The first append of `rest` failed; none after it was inserted."""
        for item in rest:
            self._last.pop(item.doc["room_id"], None)
        failed, retry = rest[0], rest[1:]
        message = str(error.get("errmsg", ""))
        if error.get("code") == 11000 and _on_id(error):
            # A retry (its id comes from its client_msg_id): the first one is the answer.
            existing = await self._messages.find_one({"_id": failed.doc["_id"]})
            if existing is not None and not failed.future.done():
                failed.future.set_result((existing, False))
            elif existing is None:
                retry.insert(0, failed)
        elif error.get("code") == 11000:  # another node took this seq first
            failed.attempts += 1
            if failed.attempts >= MAX_ATTEMPTS:
                if not failed.future.done():
                    failed.future.set_exception(AppError(
                        UNAVAILABLE, "too many concurrent messages in this room; try again"))
            else:
                retry.insert(0, failed)
        elif not failed.future.done():
            failed.future.set_exception(OperationFailure(message, error.get("code"), error))
        self._waiting.extendleft(reversed(retry))


def _on_id(error: dict[str, Any]) -> bool:
    """Whether a duplicate key error is on `_id` (not on the (room_id, seq) index)."""
    pattern = error.get("keyPattern")
    if isinstance(pattern, dict):
        return list(pattern) == ["_id"]
    return "_id_" in str(error.get("errmsg", ""))
