"""Token and cost reports: per message, per chat and model, per user over every path."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import not_found
from app.models import Principal
from app.rooms import RoomService
from storage.mongo import Mongo
from storage.usage import UsageStore

_SUMS = ("input_tokens", "output_tokens", "cached_tokens", "cost_usd")
SAMPLE_LIMIT = 10_000  # replies read back for latency percentiles


def _stats(values: list[float]) -> dict[str, float | None]:
    """mean, p50 and p95 of a sample (None when empty)."""
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    ordered = sorted(values)

    def pick(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"mean": round(statistics.fmean(ordered), 1), "p50": pick(0.5), "p95": pick(0.95)}


def _daily(docs: list[dict[str, Any]], days: int, today: datetime) -> list[dict[str, Any]]:
    """Answers, tokens and cost per UTC day for the last `days` days (oldest first, gaps 0)."""
    first = (today - timedelta(days=days - 1)).date()
    dates = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    series: dict[str, dict[str, float]] = {
        day: {"answers": 0, **{k: 0 for k in _SUMS}} for day in dates
    }
    for d in docs:
        created = d.get("created_at")
        if not isinstance(created, datetime):
            continue
        day = series.get((created if created.tzinfo else created.replace(tzinfo=UTC))
                         .astimezone(UTC).date().isoformat())
        if day is None:
            continue
        day["answers"] += 1
        for k in _SUMS:
            day[k] += (d.get("usage") or {}).get(k, 0)
    return [
        {"date": date, **{k: int(v) for k, v in series[date].items() if k != "cost_usd"},
         "cost_usd": round(series[date]["cost_usd"], 6)}
        for date in dates
    ]


class UsageService:
    """Reads usage recorded on assistant messages and in the ledger of stateless calls."""

    def __init__(self, mongo: Mongo, rooms: RoomService, ledger: UsageStore) -> None:
        self._messages = mongo.messages
        self._rooms = rooms
        self._ledger = ledger

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

    async def metrics(
        self, principal: Principal, room_id: str | None = None, days: int = 30
    ) -> dict[str, Any]:
        """Questions, answers, latency and time to first token, tokens and cost.

        The caller's own, or everyone's for an admin; one chat's when `room_id` is given.
        `daily`: answers, tokens and cost per UTC day over the last `days` days.
        Room replies count from their messages; calls outside rooms (/run without a chat,
        /aisuite/chat) from the usage ledger.
        """
        scope: dict[str, Any] = {}
        if room_id is not None:
            await self._rooms.load(principal, room_id)
            scope["room_id"] = room_id
        mine = not principal.is_admin
        questions_q = {**scope, "role": "user"}
        answers_q: dict[str, Any] = {**scope, "role": "assistant", "usage": {"$ne": None}}
        if mine:
            questions_q["author.user_id"] = principal.user_id
            answers_q["requested_by"] = principal.user_id
        questions = await self._messages.count_documents(questions_q)
        docs = await self._messages.find(
            answers_q,
            projection={"usage": 1, "metrics": 1, "status": 1, "created_at": 1, "path": 1},
        ).sort("created_at", -1).limit(SAMPLE_LIMIT).to_list()
        if room_id is None:
            calls = await self._ledger.recent(principal.user_id if mine else None, SAMPLE_LIMIT)
            questions += len(calls)
            docs += calls
        latency = [d["metrics"]["latency_ms"] for d in docs
                   if d.get("metrics", {}).get("latency_ms") is not None]
        ttft = [d["metrics"]["ttft_ms"] for d in docs
                if d.get("metrics", {}).get("ttft_ms") is not None]
        totals = {k: sum((d.get("usage") or {}).get(k, 0) for d in docs) for k in _SUMS}
        by_status: dict[str, int] = {}
        for d in docs:
            status = d.get("status", "complete")
            by_status[status] = by_status.get(status, 0) + 1
        by_path: dict[str, int] = {}
        for d in docs:
            path = d.get("path", "message")
            by_path[path] = by_path.get(path, 0) + 1
        return {
            "scope": "all" if not mine else "user", "chat_id": room_id,
            "questions": questions, "answers": len(docs), "answers_by_status": by_status,
            "answers_by_path": by_path,
            "latency_ms": _stats(latency), "time_to_first_token_ms": _stats(ttft),
            "tokens": {k: totals[k] for k in _SUMS if k != "cost_usd"},
            "cost_usd": round(totals["cost_usd"], 6),
            "daily": _daily(docs, days, datetime.now(UTC)),
        }
