"""Personal API keys: created once and shown once, stored as a hash, revoked everywhere.

A key (`plr_` + 43 random URL-safe characters) authenticates like an access token, as
its owner. Each node caches what a key hash resolves to for a few seconds; a revocation
is published on the control bus and drops the entry on every node at once, the TTL being
the fallback when a node missed the message. `last_used_at` is written in batches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth import API_KEY_PREFIX, email_allowed
from app.config import AuthSettings
from app.errors import FORBIDDEN, UNAUTHORIZED, AppError, invalid, not_found
from app.ids import new_id
from app.models import Principal, User, utcnow
from app.tasks import cancel_and_wait
from storage.api_keys import ApiKeyStore
from storage.control import ControlBus
from storage.usage import UsageStore
from storage.users import UserStore

log = logging.getLogger(__name__)

KEY_PREFIX = API_KEY_PREFIX
_KEY_SHAPE = re.compile(r"^plr_[A-Za-z0-9_-]{43}$")
SHOWN_CHARS = 12  # `prefix`: what a list shows to tell keys apart
MAX_KEYS_PER_USER = 50
CACHE_TTL_SECONDS = 10.0
CACHE_MAX_ENTRIES = 10_000
TOUCH_EVERY_SECONDS = 30.0
REVOKED = "api_key_revoked"  # the control-bus command


def key_hash(key: str) -> str:
    """The stored form of a key (sha256: the key has 256 random bits, no salt needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _iso(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def key_view(doc: dict[str, Any]) -> dict[str, Any]:
    """`{id, name, prefix, created_at, last_used_at, expires_at}` of a stored key."""
    return {"id": doc["_id"], "name": doc["name"], "prefix": doc["prefix"],
            "created_at": _iso(doc["created_at"]), "last_used_at": _iso(doc.get("last_used_at")),
            "expires_at": _iso(doc.get("expires_at"))}


def _usage(row: dict[str, Any] | None) -> dict[str, Any]:
    row = row or {}
    return {"requests": int(row.get("requests", 0)),
            "input_tokens": int(row.get("input_tokens", 0)),
            "output_tokens": int(row.get("output_tokens", 0)),
            "cost_usd": round(float(row.get("cost_usd", 0.0)), 6)}


@dataclass(frozen=True, slots=True)
class _Entry:
    """What a key hash resolved to (`user` None: no live key has it)."""

    fetched_at: float
    key_id: str | None = None
    user: User | None = None
    expires_at: datetime | None = None


class ApiKeyService:
    """Creates, lists, revokes and checks personal API keys."""

    def __init__(
        self,
        store: ApiKeyStore,
        users: UserStore,
        ledger: UsageStore,
        control: ControlBus,
        auth_settings: AuthSettings,
        *,
        on_revoked: Sequence[Callable[[str], None]] = (),
        cache_ttl: float = CACHE_TTL_SECONDS,
        touch_every: float = TOUCH_EVERY_SECONDS,
    ) -> None:
        self._store = store
        self._users = users
        self._ledger = ledger
        self._control = control
        # auth.allowed_emails / allowed_domains, read at each use.
        self._auth_settings = auth_settings
        self._revoked: OrderedDict[str, None] = OrderedDict()  # ids heard of, bounded
        # Called on every node with a revoked key's id (its sockets are closed).
        self._on_revoked = list(on_revoked)
        self._ttl = cache_ttl
        self._touch_every = touch_every
        self._cache: dict[str, _Entry] = {}
        self._used: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        control.subscribe(self._on_command)

    # -- managing -------------------------------------------------------------------------

    async def create(
        self, owner: Principal, name: str, expires_in_days: int | None
    ) -> dict[str, Any]:
        """A new key for `owner`: its record and, this once, the key itself."""
        self._refuse_keys(owner)
        if await self._store.count(owner.user_id) >= MAX_KEYS_PER_USER:
            raise invalid(f"name: at most {MAX_KEYS_PER_USER} keys; revoke one first")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        doc: dict[str, Any] = {
            "_id": new_id(), "user_id": owner.user_id, "name": name,
            "prefix": key[:SHOWN_CHARS], "key_hash": key_hash(key), "created_at": now,
            "expires_at": now + timedelta(days=expires_in_days) if expires_in_days else None,
            "last_used_at": None, "revoked_at": None,
        }
        await self._store.insert(doc)
        view = key_view(doc)
        return {"id": view["id"], "name": name, "prefix": view["prefix"], "key": key,
                "created_at": view["created_at"], "expires_at": view["expires_at"]}

    async def list(self, owner: Principal, limit: int = MAX_KEYS_PER_USER) -> list[dict[str, Any]]:
        """The owner's live keys, newest first (never the keys themselves), with their usage."""
        self._refuse_keys(owner)
        docs = await self._store.of_user(owner.user_id, limit)
        totals = await self._ledger.totals_by_key(owner.user_id, [d["_id"] for d in docs])
        return [{**key_view(d), "usage": _usage(totals.get(d["_id"]))} for d in docs]

    async def revoke(self, owner: Principal, key_id: str) -> None:
        """Revoke a key on every node; `not_found` for a key that is not the owner's."""
        self._refuse_keys(owner)
        if not await self._store.revoke(owner.user_id, key_id, utcnow()):
            raise not_found("key")
        self._forget(key_id)
        self._note_revoked(key_id)
        await self._control.publish({"type": REVOKED, "key_id": key_id})

    @staticmethod
    def _refuse_keys(owner: Principal) -> None:
        # A leaked key must not be able to mint keys that outlive its revocation.
        if owner.key_id is not None:
            raise AppError(FORBIDDEN, "API keys cannot manage API keys; log in to do that")

    # -- checking -------------------------------------------------------------------------

    async def authenticate(self, key: str) -> Principal:
        """The owner of a live key; `unauthorized` (bad, revoked, expired) or `forbidden`."""
        if not _KEY_SHAPE.match(key):
            raise AppError(UNAUTHORIZED, "invalid API key")
        digest = key_hash(key)
        entry = self._cache.get(digest)
        now = time.monotonic()
        if entry is None or now - entry.fetched_at > self._ttl:
            entry = await self._load(digest, now)
        if entry.user is None or entry.key_id is None:
            raise AppError(UNAUTHORIZED, "invalid API key (revoked or unknown)")
        if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
            raise AppError(UNAUTHORIZED, "API key expired")
        if not email_allowed(self._auth_settings, entry.user.email):
            raise AppError(FORBIDDEN, "the key's owner is no longer allowed on this server")
        self._used[entry.key_id] = utcnow()
        return Principal(
            user_id=entry.user.user_id, name=entry.user.name, email=entry.user.email,
            is_admin=entry.user.is_admin, key_id=entry.key_id,
            expires_at=entry.expires_at.timestamp() if entry.expires_at else 0.0,
        )

    async def _load(self, digest: str, now: float) -> _Entry:
        doc = await self._store.by_hash(digest)
        user = await self._users.by_id(doc["user_id"]) if doc is not None else None
        entry = _Entry(now)
        if doc is not None and user is not None:
            expires = doc.get("expires_at")
            if isinstance(expires, datetime) and expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            entry = _Entry(now, doc["_id"], user, expires)
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.pop(next(iter(self._cache)))  # the oldest entry
        self._cache[digest] = entry
        return entry

    def revoked(self, key_id: str) -> bool:
        """True when this node heard that the key was revoked (no I/O; for live sockets)."""
        return key_id in self._revoked

    def _note_revoked(self, key_id: str) -> None:
        self._revoked[key_id] = None
        while len(self._revoked) > CACHE_MAX_ENTRIES:
            self._revoked.popitem(last=False)

    def _forget(self, key_id: str) -> None:
        for digest, entry in list(self._cache.items()):
            if entry.key_id == key_id:
                del self._cache[digest]

    async def _on_command(self, command: dict[str, Any]) -> None:
        if command.get("type") == REVOKED and isinstance(command.get("key_id"), str):
            self._forget(command["key_id"])
            self._note_revoked(command["key_id"])
            for hook in self._on_revoked:
                hook(command["key_id"])

    # -- last used ------------------------------------------------------------------------

    def start(self) -> None:
        """Start writing `last_used_at` every few seconds."""
        self._task = asyncio.create_task(self._touch_forever(), name="api-key-last-used")

    async def _touch_forever(self) -> None:
        while True:
            await asyncio.sleep(self._touch_every)
            await self.flush()

    async def flush(self) -> None:
        """Write the pending `last_used_at` times (failures are logged, not raised)."""
        used, self._used = self._used, {}
        if not used:
            return
        try:
            await self._store.touch(used)
        except Exception:
            log.warning("api keys: recording last use failed", exc_info=True)

    async def close(self) -> None:
        """Stop the writer, after one last flush."""
        await cancel_and_wait(self._task)
        self._task = None
        await self.flush()

