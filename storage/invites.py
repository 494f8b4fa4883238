"""Pending invitations for emails that have no account yet."""

from __future__ import annotations

from app.models import utcnow
from storage.mongo import Mongo


class MongoInviteBook:
    """Invitations keyed by (email, room); taken when the email signs up."""

    def __init__(self, mongo: Mongo) -> None:
        self._invites = mongo.invites

    async def add(self, email: str, room_id: str, role: str) -> None:
        """Remember (or update) an invitation."""
        await self._invites.update_one(
            {"email": email.lower(), "room_id": room_id},
            {"$set": {"role": role, "created_at": utcnow()}},
            upsert=True,
        )

    async def take(self, email: str) -> list[tuple[str, str]]:
        """Remove and return the (room_id, role) invitations of an email."""
        docs = await self._invites.find({"email": email.lower()}).to_list()
        if docs:
            await self._invites.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        return [(d["room_id"], d["role"]) for d in docs]

    async def forget_room(self, room_id: str) -> None:
        """Drop the invitations of a deleted room."""
        await self._invites.delete_many({"room_id": room_id})
