"""Per-user token versions, cached on each node and invalidated over the control bus.

A user's access and refresh tokens carry the version they were issued under; bumping it
(log-out, password change, account deletion) ends every session of that user. Checking
costs no database round trip per event: a version is read once and kept for
`CACHE_SECONDS` (the safety net if a bus message is lost while Redis is away), and a bump
on any node is published to every node, which updates its cache at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from app.models import Principal
from storage.control import ControlBus
from storage.users import UserStore

CACHE_SECONDS = 30.0
MAX_ENTRIES = 50_000
COMMAND = "token_version"
# Cached for a deleted user.
GONE = -1


class TokenVersions:
    """The current token version of each user, read through a bounded per-node cache."""

    def __init__(self, users: UserStore, control: ControlBus) -> None:
        self._users = users
        self._control = control
        # user_id -> (version or GONE, monotonic time it was read)
        self._cache: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # Bumped whenever a cached version changes: a session may have ended (the
        # connection sweep rescans its sockets only then).
        self.changes = 0
        control.subscribe(self._on_command)

    def _put(self, user_id: str, version: int) -> None:
        old = self._cache.get(user_id)
        if old is None or old[0] != version:
            self.changes += 1
        self._cache[user_id] = (version, time.monotonic())
        self._cache.move_to_end(user_id)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)

    async def current(self, user_id: str) -> int | None:
        """The user's version; None when the account no longer exists."""
        hit = self._cache.get(user_id)
        if hit is not None and time.monotonic() - hit[1] < CACHE_SECONDS:
            return None if hit[0] == GONE else hit[0]
        version = await self._users.token_version(user_id)
        self._put(user_id, GONE if version is None else version)
        return version

    def revoked(self, principal: Principal) -> bool:
        """True when this node already knows the principal's session ended (no I/O)."""
        hit = self._cache.get(principal.user_id)
        return hit is not None and (hit[0] == GONE or hit[0] > principal.token_version)

    async def bump(self, user_id: str) -> None:
        """End every session of the user, on every node."""
        version = await self._users.bump_token_version(user_id)
        await self.publish(user_id, GONE if version is None else version)

    async def publish(self, user_id: str, version: int) -> None:
        """Tell every node (this one too) the user's new version (GONE: deleted)."""
        self._put(user_id, version)
        await self._control.publish({"type": COMMAND, "user_id": user_id, "version": version})

    async def _on_command(self, command: dict[str, Any]) -> None:
        if command.get("type") != COMMAND:
            return
        user_id, version = command.get("user_id"), command.get("version")
        if isinstance(user_id, str) and isinstance(version, int):
            hit = self._cache.get(user_id)
            if hit is None or version == GONE or (hit[0] != GONE and version > hit[0]):
                self._put(user_id, version)
