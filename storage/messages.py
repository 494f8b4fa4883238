"""Messages in MongoDB, with a gap-free per-room seq (storage/seq.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from app.models import Message
from storage.mongo import Mongo
from storage.seq import SeqWriter

Doc = dict[str, Any]


def message_from_doc(doc: Doc) -> Message:
    """A Message record from its document."""
    return Message(message_id=doc["_id"], **doc)


class MessageStore:
    """Append-only log per room; assistant replies are updated in place while streaming."""

    def __init__(self, mongo: Mongo) -> None:
        self._mongo = mongo
        self._messages = mongo.messages
        self._writer = SeqWriter(mongo.messages, mongo.rooms)

    async def by_client_msg_id(self, room_id: str, client_msg_id: str) -> Message | None:
        """The message a client already sent with this id, if any."""
        doc = await self._messages.find_one({"room_id": room_id, "client_msg_id": client_msg_id})
        return message_from_doc(doc) if doc else None

    async def append(self, doc: Doc) -> tuple[Message, bool]:
        """Give `doc` the room's next seq and insert it.

        Returns the stored message and whether it is new: a retry with a known
        `client_msg_id` returns the first message and allocates no seq (no gap).
        Concurrent appends share one insert (see SeqWriter).
        """
        stored, created = await self._writer.append(doc)
        return message_from_doc(stored), created

    async def settle(self) -> None:
        """The rooms' last_seq / last_activity_at up to date with the messages stored."""
        await self._writer.settle()

    async def close(self) -> None:
        """Let the appends in progress finish."""
        await self._writer.close()

    async def get(self, message_id: str) -> Message | None:
        """One message by id."""
        doc = await self._messages.find_one({"_id": message_id})
        return message_from_doc(doc) if doc else None

    async def update(self, message_id: str, fields: Doc) -> Message | None:
        """Set fields on a message (streaming checkpoints, final state)."""
        doc = await self._messages.find_one_and_update(
            {"_id": message_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
        )
        return message_from_doc(doc) if doc else None

    async def page(
        self,
        room_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages in seq order: after `after_seq` (oldest first) or the latest before."""
        seq: Doc = {}
        if before_seq is not None:
            seq["$lt"] = before_seq
        if after_seq is not None:
            seq["$gt"] = after_seq
        query: Doc = {"room_id": room_id}
        if seq:
            query["seq"] = seq
        if after_seq is not None:
            cursor = self._messages.find(query).sort("seq", ASCENDING).limit(limit)
            return [message_from_doc(d) for d in await cursor.to_list()]
        cursor = self._messages.find(query).sort("seq", DESCENDING).limit(limit)
        docs = await cursor.to_list()
        return [message_from_doc(d) for d in reversed(docs)]

    async def fail_interrupted(self, stale_before: datetime) -> int:
        """Replies still `streaming` with no checkpoint since `stale_before` become `error`.

        Their node died (a live reply checkpoints every few seconds); the text is kept.
        """
        res = await self._messages.update_many(
            {"status": "streaming", "checkpoint_at": {"$lt": stale_before}},
            {"$set": {"status": "error", "finish_reason": "error",
                      "error": {"code": "internal", "message": "interrupted by a restart"}}},
        )
        return res.modified_count

    async def delete_room(self, room_id: str) -> int:
        """Delete every message of a room."""
        res = await self._messages.delete_many({"room_id": room_id})
        self._writer.forget(room_id)
        return res.deleted_count
