"""Personal API keys in MongoDB: only the sha256 of a key is stored, never the key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import DESCENDING

from storage.mongo import Mongo

Doc = dict[str, Any]


class ApiKeyStore:
    """One document per key; a revoked key keeps its record (usage reports name it)."""

    def __init__(self, mongo: Mongo) -> None:
        self._keys = mongo.collection("api_keys")

    async def insert(self, doc: Doc) -> None:
        """Store a new key's record."""
        await self._keys.insert_one(doc)

    async def by_hash(self, key_hash: str) -> Doc | None:
        """The live (not revoked) key with this hash."""
        return await self._keys.find_one({"key_hash": key_hash, "revoked_at": None})

    async def of_user(self, user_id: str, limit: int) -> list[Doc]:
        """A user's live keys, newest first."""
        cursor = self._keys.find({"user_id": user_id, "revoked_at": None})
        return await cursor.sort("created_at", DESCENDING).limit(limit).to_list()

    async def count(self, user_id: str) -> int:
        """How many live keys a user has."""
        return await self._keys.count_documents({"user_id": user_id, "revoked_at": None})

    async def revoke(self, user_id: str, key_id: str, at: datetime) -> bool:
        """Revoke one of the user's live keys; False when there is none with this id."""
        result = await self._keys.update_one(
            {"_id": key_id, "user_id": user_id, "revoked_at": None},
            {"$set": {"revoked_at": at}},
        )
        return result.modified_count == 1

    async def touch(self, last_used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (one write per key per flush)."""
        for key_id, at in last_used.items():
            await self._keys.update_one({"_id": key_id}, {"$set": {"last_used_at": at}})
