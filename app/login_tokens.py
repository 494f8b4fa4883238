"""The single sign-on hand-over: a one-time, short-lived token exchanged for a session.

After the identity provider's callback the browser gets no cookies yet: it is sent to
`/login-success-redirect?token=...`, whose page trades the token at
`GET /api/v1/auth/validate-token?token=...` for the session cookies. The token is
random, stored only as its hash, valid for `auth.login_token_ttl_seconds` and taken
(deleted) by the first exchange, so a copy from a log, the history or a Referer is useless.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from app.auth import AuthService, Session
from app.errors import UNAUTHORIZED, AppError
from app.models import utcnow
from app.tokens import token_hash
from storage.login_tokens import LoginTokenStore
from storage.users import UserStore


class LoginTokens:
    """Issues one-time log-in tokens and redeems them for a session."""

    def __init__(
        self, store: LoginTokenStore, auth: AuthService, users: UserStore, ttl_seconds: int
    ) -> None:
        self._store = store
        self._auth = auth
        self._users = users
        self._ttl = ttl_seconds

    async def issue(self, user_id: str) -> str:
        """A new one-time token for `user_id`."""
        token = secrets.token_urlsafe(32)
        await self._store.add(token_hash(token), user_id, utcnow() + timedelta(seconds=self._ttl))
        return token

    async def redeem(self, token: str) -> Session:
        """The session for a token not used before and not expired; `unauthorized` else."""
        user_id = await self._store.take(token_hash(token)) if len(token) <= 256 else None
        if user_id is None:
            raise AppError(
                UNAUTHORIZED, "this sign-in link was already used or has expired; sign in again"
            )
        user = await self._users.by_id(user_id)
        if user is None:
            raise AppError(UNAUTHORIZED, "account no longer exists")
        self._auth.check_allowed(user.email)
        return await self._auth.session_for(user)
