"""Token and cost reports: per message, per chat and model."""

from __future__ import annotations

from typing import Any

from app.errors import not_found
from app.models import Principal
from app.rooms import RoomService
from storage.mongo import Mongo

_SUMS = ("input_tokens", "output_tokens", "cached_tokens", "cost_usd")


class UsageService:
    """Reads usage recorded on assistant messages."""

    def __init__(self, mongo: Mongo, rooms: RoomService) -> None:
        self._messages = mongo.messages
        self._rooms = rooms

    async def message_usage(self, principal: Principal, message_id: str) -> dict[str, Any]:
        """`{message_id, room_id, model, usage}` of a message the caller can see."""
        doc = await self._messages.find_one({"_id": message_id})
        if doc is None:
            raise not_found("message")
        await self._rooms.load(principal, doc["room_id"])  # not_found for strangers
        return {"message_id": message_id, "room_id": doc["room_id"], "model": doc.get("model"),
                "usage": doc.get("usage")}

    async def chat_usage(self, principal: Principal, room_id: str) -> dict[str, Any]:
        """Totals of a chat, per model and overall."""
        await self._rooms.load(principal, room_id)
        pipeline: list[dict[str, Any]] = [
            {"$match": {"room_id": room_id, "role": "assistant", "usage": {"$ne": None}}},
            {"$group": {
                "_id": "$model",
                "replies": {"$sum": 1},
                **{k: {"$sum": f"$usage.{k}"} for k in _SUMS},
            }},
            {"$sort": {"_id": 1}},
        ]
        rows = await (await self._messages.aggregate(pipeline)).to_list()
        models = [{"model": r["_id"], "replies": r["replies"], **{k: r[k] for k in _SUMS}}
                  for r in rows]
        total: dict[str, Any] = {k: sum(m[k] for m in models) for k in ("replies", *_SUMS)}
        return {"chat_id": room_id, "models": models, "total": total}
