"""Accounts: sign-up, log-in, refresh-token rotation with reuse detection, log-out."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import AuthSettings
from app.errors import FORBIDDEN, UNAUTHORIZED, AppError, invalid, rate_limited
from app.models import Principal, User
from app.token_versions import GONE, TokenVersions
from app.tokens import TokenIssuer, token_hash
from storage.ratelimit import RateLimiter
from storage.users import RefreshTokenStore, UserStore

if TYPE_CHECKING:
    from app.api_keys import ApiKeyService

MAX_PASSWORD_BYTES = 1024
API_KEY_PREFIX = "plr_"  # app.api_keys.KEY_PREFIX (imported from there at run time)

# Called after an account is created (e.g. to turn pending invites into memberships).
UserHook = Callable[[User], Awaitable[None]]


def check_password(password: str, min_chars: int) -> None:
    """`invalid_payload` for a password too short or too long (sign-up and the CLI)."""
    if len(password) < min_chars:
        raise invalid(f"password: must be at least {min_chars} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise invalid(f"password: must be at most {MAX_PASSWORD_BYTES} bytes")


def email_allowed(settings: AuthSettings, email: str) -> bool:
    """False if a whitelist is configured and the email is not on it."""
    emails = {e.lower() for e in settings.allowed_emails}
    domains = {d.lower().lstrip("@") for d in settings.allowed_domains}
    if not emails and not domains:
        return True
    email = email.lower()
    return email in emails or email.rsplit("@", 1)[-1] in domains


class Authenticator:
    """Maps a presented credential to its principal: the one check every transport uses.

    REST (Authorization: Bearer or the cookie), Socket.IO connect and `auth_refresh`, and
    the plain WebSocket all call `authenticate`; long-lived connections call `check`
    again (each plain-WebSocket frame) so a log-out ends them too.
    """

    def __init__(
        self, settings: AuthSettings, issuer: TokenIssuer, versions: TokenVersions,
        *, api_keys: ApiKeyService | None = None,
    ) -> None:
        self._settings = settings
        self._issuer = issuer
        self.versions = versions
        self._api_keys = api_keys

    async def authenticate(self, token: str) -> Principal:
        """The one check of a presented credential (REST, Socket.IO, plain WebSocket).

        A validly signed, unexpired access token whose version is the user's current one
        (no log-out since), of an account that still exists and is still allowed; or a
        live personal API key (`plr_...`), as its owner (`forbidden` when the owner is no
        longer allowed). A key's principal takes the owner's current token version.
        """
        if token.startswith(API_KEY_PREFIX) and self._api_keys is not None:
            keyed = await self._api_keys.authenticate(token)
            version = await self.versions.current(keyed.user_id)
            if version is None:
                raise AppError(UNAUTHORIZED, "account no longer exists")
            return keyed.model_copy(update={"token_version": version})
        who = self._issuer.verify_access(token)
        await self.check(who)
        return who

    async def check(self, who: Principal) -> None:
        """`unauthorized` if the principal's session ended since it was authenticated."""
        if who.expires_at and who.expires_at <= time.time():
            raise AppError(UNAUTHORIZED, "token expired")
        if who.key_id is not None and self._api_keys is not None \
                and self._api_keys.revoked(who.key_id):
            raise AppError(UNAUTHORIZED, "API key revoked")
        version = await self.versions.current(who.user_id)
        if version is None:
            raise AppError(UNAUTHORIZED, "account no longer exists")
        if version != who.token_version:
            raise AppError(UNAUTHORIZED, "session ended; log in again")
        if not email_allowed(self._settings, who.email):
            raise AppError(UNAUTHORIZED, "this email is no longer allowed on this server")


@dataclass(frozen=True)
class Session:
    """What a successful sign-up, log-in or refresh hands back."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def as_dict(self) -> dict[str, object]:
        """The REST body of SPEC §4."""
        return {
            "user": self.user.model_dump(mode="json"),
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


class AuthService:
    """Password accounts and JWT sessions."""

    def __init__(
        self,
        settings: AuthSettings,
        users: UserStore,
        refresh_tokens: RefreshTokenStore,
        issuer: TokenIssuer,
        limiter: RateLimiter,
        versions: TokenVersions,
        on_signup: list[UserHook] | None = None,
    ) -> None:
        self._settings = settings
        self._users = users
        self._refresh = refresh_tokens
        self.issuer = issuer
        self.versions = versions
        self._limiter = limiter
        self._hasher = PasswordHasher()
        self._dummy: str | None = None
        self._on_signup = on_signup if on_signup is not None else []

    def _check_password(self, password: str) -> None:
        check_password(password, self._settings.min_password_chars)

    def check_allowed(self, email: str) -> None:
        """`forbidden` if a whitelist is configured and the email is not on it."""
        if not email_allowed(self._settings, email):
            raise AppError(FORBIDDEN, "this email is not allowed to use this server")

    async def _hash(self, password: str) -> str:
        # argon2 is deliberately slow: keep it off the event loop.
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self._hash(secrets.token_urlsafe(16))
        return self._dummy

    async def _verify(self, stored: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self._hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def create_user(
        self, email: str, password: str | None, name: str, *, is_admin: bool = False
    ) -> User:
        """Create an account (sign-up, admin bootstrap, OIDC first login)."""
        self.check_allowed(email)
        password_hash = None
        if password is not None:
            self._check_password(password)
            password_hash = await self._hash(password)
        user = await self._users.create(email, name, password_hash, is_admin=is_admin)
        for hook in self._on_signup:
            await hook(user)
        return user

    async def signup(self, email: str, password: str, name: str) -> Session:
        """Create an account and log it in."""
        user = await self.create_user(email, password, name)
        return await self.session_for(user)

    async def login(self, email: str, password: str, client_ip: str) -> Session:
        """Check a password; failures are rate limited per email and address."""
        key = f"login:{email.lower()}:{client_ip}"
        window = self._settings.login_window_seconds
        # Counted before the password is checked, in one atomic step: parallel guesses
        # each take an attempt, so no more than login_max_failures are ever verified.
        if not await self._limiter.hit(key, self._settings.login_max_failures, window):
            raise rate_limited(
                f"too many failed log-ins; try again in {window // 60 or 1} minute(s)", window
            )
        found = await self._users.password_hash(email)
        stored = found[1] if found is not None else None
        ok = False
        if len(password.encode()) <= 4096:
            # Unknown emails and accounts without a password verify against a dummy hash:
            # the answer takes as long whether the account exists or not.
            ok = await self._verify(stored or await self._dummy_hash(), password)
            ok = ok and stored is not None
        if not ok or found is None:
            raise AppError(UNAUTHORIZED, "wrong email or password")
        await self._limiter.reset(key, window)
        user, stored = found
        self.check_allowed(user.email)
        if stored is not None and self._hasher.check_needs_rehash(stored):
            await self._users.set_password_hash(user.user_id, await self._hash(password))
        return await self.session_for(user)

    async def change_password(
        self, user_id: str, current: str, new: str, client_ip: str
    ) -> Session:
        """Replace the password; every session ends but the new one handed back."""
        user = await self.me(user_id)
        self._check_password(new)
        # The current password, checked like a log-in (rate limited, same errors).
        await self.login(user.email, current, client_ip)
        await self._users.set_password_hash(user_id, await self._hash(new))
        await self.versions.bump(user_id)
        await self._refresh.revoke_user(user_id)
        return await self.session_for(user)

    async def session_for(
        self, user: User, family_id: str | None = None, auth_time: int | None = None
    ) -> Session:
        """A new access + refresh token pair for `user` (a new family unless given)."""
        version = await self._users.token_version(user.user_id)
        if version is None:
            raise AppError(UNAUTHORIZED, "account no longer exists")
        access, ttl = self.issuer.issue_access(user, version, auth_time)
        refresh = self.issuer.issue_refresh(user.user_id, family_id, version, auth_time)
        await self._refresh.add(
            refresh.jti,
            refresh.family_id,
            user.user_id,
            token_hash(refresh.token),
            datetime.fromtimestamp(refresh.expires_at, UTC),
        )
        return Session(user, access, refresh.token, ttl, self.issuer.refresh_ttl)

    async def refresh(self, refresh_token: str) -> Session:
        """Rotate a refresh token; reusing a spent one revokes its whole family."""
        claims = self.issuer.verify_refresh(refresh_token)
        record = await self._refresh.spend(claims["jti"], token_hash(refresh_token))
        if record is None:
            known = await self._refresh.find(claims["jti"])
            if known is not None:
                await self._refresh.revoke_family(known["family_id"])
            raise AppError(UNAUTHORIZED, "refresh token is no longer valid")
        user = await self._users.by_id(record["user_id"])
        if user is None:
            raise AppError(UNAUTHORIZED, "account no longer exists")
        if await self.versions.current(user.user_id) != claims.get("ver", 0):
            await self._refresh.revoke_family(record["family_id"])
            raise AppError(UNAUTHORIZED, "session ended; log in again")
        try:
            self.check_allowed(user.email)  # taken off the whitelist since signing up
        except AppError:
            await self._refresh.revoke_family(record["family_id"])
            raise
        return await self.session_for(user, record["family_id"], claims.get("auth_time"))

    async def logout(self, refresh_token: str | None, user_id: str | None = None) -> None:
        """End every session of the user (all devices): refresh and access tokens alike.

        The user comes from the refresh token, else from the caller's access token.
        """
        if refresh_token:
            try:
                claims = self.issuer.verify_refresh(refresh_token)
            except AppError:
                pass
            else:
                await self._refresh.revoke_family(str(claims["fam"]))
                user_id = str(claims["sub"])
        if user_id is not None:
            await self.versions.bump(user_id)

    async def delete_account(self, user_id: str) -> bool:
        """Delete the account record; its tokens are refused at once on every node."""
        deleted = await self._users.delete(user_id)
        await self._refresh.revoke_user(user_id)
        await self.versions.publish(user_id, GONE)
        return deleted

    async def me(self, user_id: str) -> User:
        """The current user's account."""
        user = await self._users.by_id(user_id)
        if user is None:
            raise AppError(UNAUTHORIZED, "account no longer exists")
        return user
