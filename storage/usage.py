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

    async def totals_by_key(self, user_id: str, key_ids: list[str]) -> dict[str, Doc]:
        """Calls, tokens and cost of each of a user's API keys (keys without calls absent)."""
        if not key_ids:
            return {}
        pipeline: list[Doc] = [
            {"$match": {"user_id": user_id, "key_id": {"$in": key_ids}}},
            {"$group": {
                "_id": "$key_id", "requests": {"$sum": 1},
                "input_tokens": {"$sum": "$usage.input_tokens"},
                "output_tokens": {"$sum": "$usage.output_tokens"},
                "cost_usd": {"$sum": "$usage.cost_usd"},
            }},
        ]
        rows = await (await self._usage.aggregate(pipeline)).to_list()
        return {row.pop("_id"): row for row in rows}

    async def recent(self, user_id: str | None, limit: int) -> list[Doc]:
        """The newest records of a user (everyone's when None), newest first."""
        query: Doc = {} if user_id is None else {"user_id": user_id}
        cursor = self._usage.find(query).sort("created_at", DESCENDING).limit(limit)
        return await cursor.to_list()
