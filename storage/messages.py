"""Messages in MongoDB, with a gap-free per-room seq (storage/seq.py)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from app.models import Message
from storage.mongo import Mongo, update_and_read
from storage.recent import RecentMessages, streaming_ids
from storage.seq import SeqWriter

Doc = dict[str, Any]


def client_message_id(room_id: str, user_id: str, client_msg_id: str) -> str:
    """The id of a message sent with a `client_msg_id`: the same for every retry of it.

    A retry's insert then fails on the `_id` index every collection has, and the first
    message is returned: no index of its own (one less entry for every message stored),
    no read before each message. 128 bits, like `new_id`'s; per room and per sender.
    """
    key = "\0".join((room_id, user_id, client_msg_id)).encode()
    return hashlib.sha256(key).hexdigest()[:32]


def message_from_doc(doc: Doc) -> Message:
    """A Message record from its document."""
    return Message(message_id=doc["_id"], **doc)


class MessageStore:
    """Append-only log per room; assistant replies are updated in place while streaming."""

    def __init__(self, mongo: Mongo) -> None:
        self._mongo = mongo
        self._messages = mongo.messages
        self._writer = SeqWriter(mongo.messages, mongo.rooms)
        self._recent = RecentMessages()

    async def by_client_msg_id(
        self, room_id: str, user_id: str, client_msg_id: str
    ) -> Message | None:
        """The message this user already sent to this room with this id, if any."""
        doc = await self._messages.find_one(
            {"_id": client_message_id(room_id, user_id, client_msg_id)})
        return message_from_doc(doc) if doc else None

    async def append(self, doc: Doc) -> tuple[Message, bool]:
        """Give `doc` the room's next seq and insert it.

        Returns the stored message and whether it is new: a retry with a known
        `client_msg_id` returns the first message and allocates no seq (no gap).
        Concurrent appends share one insert (see SeqWriter).
        """
        stored, created = await self._writer.append(doc)
        message = message_from_doc(stored)
        if created:
            self._recent.stored(message)
        return message, created

    def known_last(self, room_id: str) -> int | None:
        """The room's last seq as this node knows it (None: not known here)."""
        return self._writer.known_last(room_id)

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

    async def update(self, message_id: str, fields: Doc, *,
                     held: Message | None = None) -> Message | None:
        """Set fields on a message (streaming checkpoints, final state); None if it is gone.

        `held`: the message as its only writer holds it (a reply its own): the result is
        that with `fields`, not read back.
        """
        if held is None:
            doc = await update_and_read(self._messages, {"_id": message_id}, {"$set": fields})
            if doc is None:
                return None
            message = message_from_doc(doc)
        else:
            result = await self._messages.update_one({"_id": message_id}, {"$set": fields})
            if result.matched_count == 0:
                return None
            message = Message.model_validate({**held.model_dump(), **fields})
        self._recent.updated(message)
        return message

    async def page(
        self,
        room_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages in seq order: after `after_seq` (oldest first) or the latest before."""
        if after_seq is not None:
            return [message_from_doc(d)
                    for d in await self._after(room_id, after_seq, before_seq, limit)]
        if before_seq is not None:
            held = self._recent.below(room_id, before_seq, limit)
            if held is not None:
                return await self._refreshed(held)
        # The latest page of a room this node has not written to yet: its last seq is read
        # (from the room's last_seq up), not found by sorting the room.
        upto = before_seq - 1 if before_seq is not None else await self._writer.last_seq(room_id)
        docs = await self._latest_in_range(room_id, upto, limit, bounded=before_seq is not None)
        if docs is None:
            query: Doc = {"room_id": room_id}
            if before_seq is not None:
                query["seq"] = {"$lt": before_seq}
            cursor = self._messages.find(query).sort("seq", DESCENDING).limit(limit)
            docs = await cursor.to_list()
        messages = [message_from_doc(d) for d in reversed(docs)]
        if before_seq is not None:
            self._recent.read(room_id, messages, before_seq - 1)
        return messages

    async def _after(self, room_id: str, after_seq: int, before_seq: int | None,
                     limit: int) -> list[Doc]:
        """Up to `limit` messages after `after_seq` (and before `before_seq`), oldest first.

        Read as the seq range (after, after + limit]: seqs are gap-free, so it holds the
        page. A sort with a limit over the rest of the room reads all of it on SecantusDB
        (921 ms from the start of a room of 30,000 messages, 2.5 ms as a range:
        `python -m bench.db_scaling`). A missing seq (not expected) reads it that way.
        """
        seq: Doc = {"$gt": after_seq, "$lte": after_seq + limit}
        if before_seq is not None:
            seq["$lt"] = before_seq
        docs = await self._messages.find({"room_id": room_id, "seq": seq}).sort(
            "seq", ASCENDING).limit(limit).to_list()
        if all(int(doc["seq"]) == after_seq + i + 1 for i, doc in enumerate(docs)):
            return docs
        del seq["$lte"]
        return await self._messages.find({"room_id": room_id, "seq": seq}).sort(
            "seq", ASCENDING).limit(limit).to_list()

    async def _refreshed(self, messages: list[Message]) -> list[Message]:
        """A page held in memory, with the replies still streaming read again."""
        ids = streaming_ids(messages)
        if not ids:
            return messages
        fresh = {doc["_id"]: message_from_doc(doc)
                 async for doc in self._messages.find({"_id": {"$in": ids}})}
        for message in fresh.values():
            self._recent.updated(message)
        return [fresh.get(m.message_id, m) for m in messages]

    async def _latest_in_range(
        self, room_id: str, upto: int, limit: int, *, bounded: bool
    ) -> list[Doc] | None:
        """The latest `limit` messages up to seq `upto`, newest first, read as a seq range.

        Seqs are gap-free, so the range (upto - limit, upto] holds exactly the page: the
        database reads that many index entries instead of sorting the whole room (what a
        sort with a limit costs where it is not pushed into the index). Unbounded above
        (`upto` is this node's last known seq), messages another node stored since are
        included. None when a seq is missing (not expected): read it the plain way.
        """
        low = max(upto - limit, 0)
        seq: Doc = {"$gt": low}
        if bounded:
            seq["$lte"] = upto
        cursor = self._messages.find({"room_id": room_id, "seq": seq})
        docs = await cursor.sort("seq", DESCENDING).limit(limit).to_list()
        if not docs:
            return [] if upto == 0 else None
        first, last = int(docs[0]["seq"]), int(docs[-1]["seq"])
        contiguous = first - last + 1 == len(docs)
        return docs if contiguous and (len(docs) == limit or last == low + 1) else None

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
        self._recent.forget(room_id)
        return res.deleted_count
