"""Users and refresh-token records in MongoDB."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from app.errors import CONFLICT, AppError
from app.ids import new_id
from app.models import User, utcnow
from storage.mongo import Mongo, update_and_read


def _user(doc: dict[str, Any]) -> User:
    return User(user_id=doc["_id"], **doc)


class UserStore:
    """Accounts: email is unique (stored lower-cased)."""

    def __init__(self, mongo: Mongo) -> None:
        self._users = mongo.users

    async def create(
        self, email: str, name: str, password_hash: str | None, *, is_admin: bool = False
    ) -> User:
        """Insert a user; `conflict` if the email is taken."""
        doc = {
            "_id": new_id(),
            "email": email.lower(),
            "name": name,
            "password_hash": password_hash,
            "is_admin": is_admin,
            "created_at": utcnow(),
        }
        try:
            await self._users.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AppError(CONFLICT, "an account with this email already exists") from exc
        return _user(doc)

    async def password_hash(self, email: str) -> tuple[User, str | None] | None:
        """The user with this email and their stored hash, if any."""
        doc = await self._users.find_one({"email": email.lower()})
        if doc is None:
            return None
        return _user(doc), doc.get("password_hash")

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace a user's hash (rehash on login when parameters change)."""
        await self._users.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}})

    async def set_admin(self, user_id: str, is_admin: bool) -> None:
        """Grant or revoke admin."""
        await self._users.update_one({"_id": user_id}, {"$set": {"is_admin": is_admin}})

    async def by_id(self, user_id: str) -> User | None:
        """The user with this id."""
        doc = await self._users.find_one({"_id": user_id})
        return _user(doc) if doc else None

    async def token_version(self, user_id: str) -> int | None:
        """The user's token version (0 until the first bump); None if there is no such user."""
        doc = await self._users.find_one({"_id": user_id}, {"token_version": 1})
        return int(doc.get("token_version", 0)) if doc else None

    async def bump_token_version(self, user_id: str) -> int | None:
        """Increment the token version (ends every session); the new one, None if no user."""
        doc = await update_and_read(
            self._users, {"_id": user_id}, {"$inc": {"token_version": 1}},
            projection={"token_version": 1},
        )
        return int(doc["token_version"]) if doc else None

    async def delete(self, user_id: str) -> bool:
        """Delete the account record; False if there was none."""
        res = await self._users.delete_one({"_id": user_id})
        return res.deleted_count > 0

    async def list_users(self, limit: int) -> list[User]:
        """Accounts, oldest first (for `parlour users list`)."""
        docs = await self._users.find({}).sort("created_at", 1).limit(limit).to_list()
        return [_user(d) for d in docs]

    async def by_email(self, email: str) -> User | None:
        """The user with this email."""
        doc = await self._users.find_one({"email": email.lower()})
        return _user(doc) if doc else None


class IdentityStore:
    """Single sign-on identities: (issuer, subject) -> user. One user may have several."""

    def __init__(self, mongo: Mongo) -> None:
        self._identities = mongo.collection("identities")

    @staticmethod
    def _key(issuer: str, subject: str) -> str:
        return f"{issuer} {subject}"

    async def user_id(self, issuer: str, subject: str) -> str | None:
        """The user this identity signs in as, if linked."""
        doc = await self._identities.find_one({"_id": self._key(issuer, subject)})
        return str(doc["user_id"]) if doc else None

    async def link(self, issuer: str, subject: str, user_id: str, provider: str) -> None:
        """Link an identity to a user (idempotent; an identity links to one user only)."""
        try:
            await self._identities.insert_one({
                "_id": self._key(issuer, subject), "user_id": user_id, "issuer": issuer,
                "subject": subject, "provider": provider, "created_at": utcnow(),
            })
        except DuplicateKeyError as exc:
            if await self.user_id(issuer, subject) != user_id:
                raise AppError(CONFLICT, "this sign-in is linked to another account") from exc

    async def has_any(self, user_id: str) -> bool:
        """Whether the user has signed in with any provider since identities are kept."""
        return await self._identities.find_one({"user_id": user_id}) is not None

    async def forget_user(self, user_id: str) -> None:
        """Unlink every identity of a deleted user."""
        await self._identities.delete_many({"user_id": user_id})


class RefreshTokenStore:
    """One record per issued refresh token (hashed), grouped by rotation family."""

    def __init__(self, mongo: Mongo) -> None:
        self._tokens = mongo.refresh_tokens

    async def add(
        self, jti: str, family_id: str, user_id: str, token_hash: str, expires_at: datetime
    ) -> None:
        """Record a newly issued refresh token."""
        await self._tokens.insert_one(
            {
                "_id": jti,
                "family_id": family_id,
                "user_id": user_id,
                "token_hash": token_hash,
                "expires_at": expires_at,
                "used_at": None,
                "revoked": False,
                "created_at": utcnow(),
            }
        )

    async def spend(self, jti: str, token_hash: str) -> dict[str, Any] | None:
        """Mark an unused, unrevoked token used; None if it was already spent or unknown."""
        return await update_and_read(
            self._tokens,
            {"_id": jti, "token_hash": token_hash, "used_at": None, "revoked": False},
            {"$set": {"used_at": utcnow()}},
        )

    async def find(self, jti: str) -> dict[str, Any] | None:
        """The record of a token, spent or not."""
        return await self._tokens.find_one({"_id": jti})

    async def revoke_family(self, family_id: str) -> int:
        """Revoke every token of a rotation family; returns how many changed."""
        res = await self._tokens.update_many(
            {"family_id": family_id, "revoked": False}, {"$set": {"revoked": True}}
        )
        return res.modified_count

    async def revoke_user(self, user_id: str) -> int:
        """Revoke every refresh token of a user (account deleted)."""
        res = await self._tokens.update_many(
            {"user_id": user_id, "revoked": False}, {"$set": {"revoked": True}}
        )
        return res.modified_count

    async def revoke(self, jti: str) -> None:
        """Revoke one token (logout)."""
        await self._tokens.update_one({"_id": jti}, {"$set": {"revoked": True}})
