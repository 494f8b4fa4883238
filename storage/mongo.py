"""MongoDB connection, collections and indexes (pymongo's native asyncio client)."""

from __future__ import annotations

import time
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

Doc = dict[str, Any]


async def update_and_read(
    collection: AsyncCollection[Doc], query: Doc, update: Doc, *,
    projection: Doc | None = None, array_filters: list[Doc] | None = None,
) -> Doc | None:
    """`update_one` on a query naming an `_id`, then the document as it is now.

    None when nothing matched. This stands in for `find_one_and_update`: SecantusDB, the
    embedded default, finds the document through the index but rewrites it under a filter
    (`{_id, $and: [query]}`) that no index serves, so each findAndModify scans the whole
    collection: 339 ms with 30,000 messages stored, against 1.4 ms for this pair
    (`python -m bench.db_scaling`). The document read back may already carry a
    later write; every caller wants the latest state.
    """
    result = await collection.update_one(query, update, array_filters=array_filters)
    if result.matched_count == 0:
        return None
    return await collection.find_one({"_id": query["_id"]}, projection)


async def delete_and_read(collection: AsyncCollection[Doc], query: Doc) -> Doc | None:
    """The document matching `query`, deleted; None if none matched or another took it.

    `find_one_and_delete` without its collection scan on SecantusDB (`update_and_read`):
    of two callers racing for one document, only the one whose delete removed it gets it.
    """
    doc = await collection.find_one(query)
    if doc is None:
        return None
    result = await collection.delete_one({**query, "_id": doc["_id"]})
    return doc if result.deleted_count else None


class MongoUnavailable(Exception):
    """The configured MongoDB server did not answer."""


class Mongo:
    """One client for the process; the collections Parlour uses."""

    def __init__(self, uri: str, database: str, timeout_seconds: float = 10.0) -> None:
        self.uri = uri
        ms = int(timeout_seconds * 1000)
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms
        )
        self.db: AsyncDatabase[Doc] = self.client[database]

    def collection(self, name: str) -> AsyncCollection[Doc]:
        """A collection by name."""
        return self.db[name]

    @property
    def users(self) -> AsyncCollection[Doc]:
        return self.db["users"]

    @property
    def rooms(self) -> AsyncCollection[Doc]:
        return self.db["rooms"]

    @property
    def messages(self) -> AsyncCollection[Doc]:
        return self.db["messages"]

    @property
    def refresh_tokens(self) -> AsyncCollection[Doc]:
        return self.db["refresh_tokens"]

    @property
    def invites(self) -> AsyncCollection[Doc]:
        return self.db["invites"]

    async def connect(self) -> None:
        """Check the server answers and create indexes; raise MongoUnavailable if not."""
        try:
            await self.client.admin.command("ping")
        except PyMongoError as exc:
            raise MongoUnavailable(str(exc)) from exc
        await self.ensure_indexes()

    async def ensure_indexes(self) -> None:
        """Create every index Parlour relies on (idempotent)."""
        await self.users.create_index("email", unique=True)
        await self.rooms.create_index([("member_ids", ASCENDING), ("last_activity_at", DESCENDING)])
        # Public rooms only (the public room list): without it, that list read every room.
        await self.rooms.create_index(
            [("visibility", ASCENDING), ("last_activity_at", DESCENDING)], name="public_rooms",
            partialFilterExpression={"visibility": "public"},
        )
        await self.messages.create_index([("room_id", ASCENDING), ("seq", ASCENDING)], unique=True)
        # Only replies still streaming are indexed (what the sweep for replies a dead node
        # left asks for): a finished message, nearly every one, costs no entry here.
        await self.messages.create_index(
            [("status", ASCENDING), ("checkpoint_at", ASCENDING)], name="streaming_replies",
            partialFilterExpression={"status": "streaming"},
        )
        # Older data: an index of every message's status, and one of client_msg_ids (a
        # retry is now found by its _id, derived from it: storage/messages.py).
        existing = await self.messages.index_information()
        for name in ("status_1", "room_id_1_client_msg_id_1"):
            if name in existing:
                await self.messages.drop_index(name)
        await self.refresh_tokens.create_index("family_id")
        await self.refresh_tokens.create_index("user_id")
        await self.db["identities"].create_index("user_id")
        # One-time log-in tokens go away on their own once expired (redeeming checks too).
        await self.collection("login_tokens").create_index("expires_at", expireAfterSeconds=0)
        await self.invites.create_index([("email", ASCENDING), ("room_id", ASCENDING)], unique=True)
        files = self.collection("files")  # storage/files.py
        await files.create_index([("chat_id", ASCENDING), ("created_at", DESCENDING)])
        await files.create_index(
            [("owner_id", ASCENDING), ("scope", ASCENDING), ("created_at", DESCENDING)])
        await files.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
        usage = self.collection("usage")  # storage/usage.py
        await usage.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])
        keys = self.collection("api_keys")  # storage/api_keys.py
        await keys.create_index("key_hash", unique=True)
        await keys.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])

    async def ping(self) -> float:
        """Round-trip time of a ping in milliseconds."""
        start = time.perf_counter()
        await self.client.admin.command("ping")
        return (time.perf_counter() - start) * 1000

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.close()
