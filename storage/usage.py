"""The usage ledger of model calls outside rooms (/run without chat_id, /aisuite/chat).

Room replies keep their usage on the assistant message; this collection holds the calls
that have no message, so user metrics and daily budgets see every path.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING

from storage.mongo import Mongo

Doc = dict[str, Any]


class UsageStore:
    """One document per stateless completion."""

    def __init__(self, mongo: Mongo) -> None:
        self._usage = mongo.collection("usage")

    async def insert(self, doc: Doc) -> None:
        """Record one call."""
        await self._usage.insert_one(doc)

    async def recent(self, user_id: str | None, limit: int) -> list[Doc]:
        """The newest records of a user (everyone's when None), newest first."""
        query: Doc = {} if user_id is None else {"user_id": user_id}
        cursor = self._usage.find(query).sort("created_at", DESCENDING).limit(limit)
        return await cursor.to_list()
