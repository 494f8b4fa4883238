"""Uploaded files in MongoDB: chat files and knowledge-base documents, with ingestion state.

One collection holds both: `scope` is `chat` (a file of a room, searchable in that room)
or `user` (a document of the owner's knowledge base). A chat file's document_id is its
file_id. Ingestion is claimed with a lease so several nodes can share the work. Deleting
first marks a record `deleting` (hidden, and refused by ingestion updates, so a worker
that loses the race removes its own vectors), then removes vectors and blob, then it.
A chat file that cannot be read as text (an image, an archive) is kept with status
`stored` and never ingested.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pymongo import ASCENDING, DESCENDING

from app.models import utcnow
from storage.mongo import Mongo, update_and_read

Doc = dict[str, Any]
Scope = Literal["chat", "user"]
READY_SECONDS = 2.0  # an any_ready answer is reused this long (see FileStore.__init__)
READY_KEYS = 10_000

Status = Literal["processing", "ready", "failed", "stored", "deleting"]
VISIBLE: Doc = {"$ne": "deleting"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLAIM_ATTEMPTS = 5  # candidates one claim tries when other nodes take them first


class FileRecord(BaseModel):
    """One stored upload and its ingestion state."""

    model_config = ConfigDict(extra="ignore")

    file_id: str
    scope: Scope
    chat_id: str | None = None
    owner_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    key: str
    status: Status = "processing"
    progress: float = 0.0
    error: str | None = None
    # Why it failed, as a stable code: payload_too_large (over an ingest or size limit),
    # invalid_payload (unreadable, no text), internal.
    error_code: str | None = None
    chunks: int = 0
    attempts: int = 0
    created_at: datetime

    @property
    def document_id(self) -> str:
        return self.file_id

    @property
    def namespace(self) -> str:
        """The vector namespace of its chunks."""
        return f"chat:{self.chat_id}" if self.scope == "chat" else f"user:{self.owner_id}"

    def status_payload(self) -> dict[str, Any]:
        """The `document_status` event body."""
        payload: dict[str, Any] = {
            "document_id": self.file_id, "status": self.status, "progress": self.progress,
        }
        if self.error:
            payload["error"] = self.error
            payload["error_code"] = self.error_code or "invalid_payload"
        return payload


def _record(doc: Doc) -> FileRecord:
    return FileRecord(file_id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


class FileStore:
    """CRUD on file records, plus the ingestion claim/lease protocol."""

    def __init__(self, mongo: Mongo) -> None:
        self._files = mongo.collection("files")
        # any_ready's answers, reused for READY_SECONDS unless this node wrote a record
        # since (another node's change shows within READY_SECONDS).
        self._ready: OrderedDict[tuple[str, str], tuple[float, int, bool]] = OrderedDict()
        self._generation = 0

    def _written(self) -> None:
        """A write that may change what any_ready answers (not the ingest leases)."""
        self._generation += 1

    async def insert(self, record: FileRecord) -> None:
        """Store a new record (its blob is already stored)."""
        self._written()
        doc = record.model_dump(exclude={"file_id"})
        doc.update(_id=record.file_id, lease_until=EPOCH)
        await self._files.insert_one(doc)

    async def get(self, file_id: str, *, deleting: bool = False) -> FileRecord | None:
        """A record by id, whoever owns it (callers check access); hides `deleting` ones."""
        query: Doc = {"_id": file_id} if deleting else {"_id": file_id, "status": VISIBLE}
        doc = await self._files.find_one(query)
        return _record(doc) if doc else None

    async def ready_ids(self, file_ids: list[str]) -> set[str]:
        """Which of `file_ids` are ingested and not being deleted."""
        cursor = self._files.find({"_id": {"$in": file_ids}, "status": "ready"}, {"_id": 1})
        return {doc["_id"] for doc in await cursor.to_list()}

    async def list_chat(self, chat_id: str, limit: int = 1000) -> list[FileRecord]:
        """A room's files, newest first."""
        cursor = self._files.find({"chat_id": chat_id, "scope": "chat", "status": VISIBLE})
        docs = await cursor.sort("created_at", DESCENDING).limit(limit).to_list()
        return [_record(d) for d in docs]

    async def list_documents(self, owner_id: str, limit: int = 1000) -> list[FileRecord]:
        """A user's knowledge-base documents, newest first."""
        cursor = self._files.find(
            {"owner_id": owner_id, "scope": "user", "status": VISIBLE}
        )
        docs = await cursor.sort("created_at", DESCENDING).limit(limit).to_list()
        return [_record(d) for d in docs]

    async def count_in_chat(self, chat_id: str, file_ids: list[str]) -> int:
        """How many of `file_ids` are files of the room."""
        return await self._files.count_documents(
            {"_id": {"$in": file_ids}, "chat_id": chat_id, "scope": "chat", "status": VISIBLE}
        )

    async def any_ready(self, *, chat_id: str | None = None, owner_id: str | None = None) -> bool:
        """Whether the room (or the user's knowledge base) has an ingested file."""
        # The chat (or owner) first: SecantusDB picks the index of the filter's first
        # field, and every ready file of every chat has the status.
        query: Doc = ({"chat_id": chat_id, "scope": "chat"} if chat_id is not None
                      else {"owner_id": owner_id, "scope": "user"})
        query.update(status="ready", chunks={"$gt": 0})
        key = ("chat", chat_id) if chat_id is not None else ("user", str(owner_id))
        now, generation = time.monotonic(), self._generation
        known = self._ready.get(key)
        if known is not None and known[0] > now and known[1] == generation:
            return known[2]
        # No `hint`: SecantusDB walks a hinted index whole (94 ms with 5,000 files stored,
        # 2.3 ms without: `python -m bench.db_scaling`), and this is asked before replies.
        found = await self._files.find_one(query, {"_id": 1}) is not None
        self._ready[key] = (now + READY_SECONDS, generation, found)
        self._ready.move_to_end(key)
        while len(self._ready) > READY_KEYS:
            self._ready.popitem(last=False)
        return found

    async def mark_deleting(self, file_id: str) -> FileRecord | None:
        """Start deleting a record (also one already being deleted); None if there is none."""
        self._written()
        doc = await update_and_read(
            self._files, {"_id": file_id}, {"$set": {"status": "deleting"}})
        return _record(doc) if doc else None

    async def mark_chat_deleting(self, chat_id: str) -> list[FileRecord]:
        """Start deleting every file of a room; their records."""
        self._written()
        await self._files.update_many(
            {"chat_id": chat_id, "scope": "chat"}, {"$set": {"status": "deleting"}}
        )
        docs = await self._files.find({"chat_id": chat_id, "scope": "chat"}).to_list()
        return [_record(d) for d in docs]

    async def delete(self, file_id: str) -> None:
        """Remove a record for good."""
        self._written()
        await self._files.delete_one({"_id": file_id})

    # -- ingestion ------------------------------------------------------------------------

    async def claim(
        self, node_id: str, lease_seconds: float, skip_owners: Collection[str] = (),
    ) -> FileRecord | None:
        """Take the oldest unclaimed `processing` record for `lease_seconds`, counting it.

        Records of `skip_owners` are left for later (they have enough work running).
        """
        now = utcnow()
        query: Doc = {"status": "processing", "lease_until": {"$lt": now}}
        if skip_owners:
            query["owner_id"] = {"$nin": list(skip_owners)}
        update = {"$set": {"lease_until": now + timedelta(seconds=lease_seconds),
                           "node": node_id},
                  "$inc": {"attempts": 1}}
        # The oldest candidate, then a conditional update of it by _id (not findAndModify:
        # storage/mongo.update_and_read). Another node may take it in between: then the
        # next oldest, a bounded number of times; the next poll tries again.
        for _ in range(CLAIM_ATTEMPTS):
            found = await self._files.find_one(query, {"_id": 1}, sort=[("created_at", ASCENDING)])
            if found is None:
                return None
            doc = await update_and_read(self._files, {**query, "_id": found["_id"]}, update)
            if doc is not None:
                return _record(doc)
        return None

    async def renew(self, file_id: str, lease_seconds: float) -> bool:
        """Extend a claim; False if the record is gone."""
        result = await self._files.update_one(
            {"_id": file_id, "status": "processing"},
            {"$set": {"lease_until": utcnow() + timedelta(seconds=lease_seconds)}},
        )
        return result.matched_count == 1

    async def release_all(self) -> int:
        """Make every claimed `processing` record claimable now (single node, at startup)."""
        result = await self._files.update_many(
            {"status": "processing", "lease_until": {"$gt": EPOCH}},
            {"$set": {"lease_until": EPOCH}},
        )
        return result.modified_count

    async def retry_later(self, file_id: str, seconds: float) -> None:
        """Give a claimed record back, claimable again after `seconds`."""
        await self._files.update_one(
            {"_id": file_id, "status": "processing"},
            {"$set": {"lease_until": utcnow() + timedelta(seconds=seconds)}},
        )

    async def update_state(self, file_id: str, fields: Doc) -> FileRecord | None:
        """Set ingestion fields of a `processing` record; None if it is gone or deleting."""
        self._written()
        doc = await update_and_read(
            self._files, {"_id": file_id, "status": "processing"}, {"$set": fields})
        return _record(doc) if doc else None
