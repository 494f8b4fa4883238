"""One-time log-in tokens (single sign-on hand-over): stored hashed, taken once."""

from __future__ import annotations

from datetime import datetime

from app.models import utcnow
from storage.mongo import Mongo, delete_and_read


class LoginTokenStore:
    """`login_tokens`: {_id: sha256 of the token, user_id, expires_at} (TTL-indexed)."""

    def __init__(self, mongo: Mongo) -> None:
        self._tokens = mongo.collection("login_tokens")

    async def add(self, token_hash: str, user_id: str, expires_at: datetime) -> None:
        """Record a token handed to a browser."""
        await self._tokens.insert_one(
            {"_id": token_hash, "user_id": user_id, "expires_at": expires_at}
        )

    async def take(self, token_hash: str) -> str | None:
        """The user of an unexpired token, deleting it in the same step; None otherwise."""
        doc = await delete_and_read(
            self._tokens, {"_id": token_hash, "expires_at": {"$gt": utcnow()}}
        )
        return str(doc["user_id"]) if doc is not None else None
