"""JWT access and refresh tokens (PyJWT, HS256 pinned)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from app.errors import UNAUTHORIZED, AppError
from app.ids import new_id
from app.models import Principal, User

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "sub", "jti", "typ"]


@dataclass(frozen=True)
class IssuedRefresh:
    token: str
    jti: str
    family_id: str
    expires_at: float


def token_hash(token: str) -> str:
    """The sha256 of a token: what is stored instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_or_create_secret(data_dir: Path) -> str:
    """The embedded default's secret: random, persisted under data_dir with mode 0600."""
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


class TokenIssuer:
    """Signs and verifies Parlour's tokens."""

    def __init__(
        self, secret: str, access_ttl: int, refresh_ttl: int, max_lifetime: int = 0
    ) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes (RFC 7518 §3.2)")
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        # Seconds a session may last from its log-in, refreshes included (0: no cap).
        self.max_lifetime = max_lifetime

    def _expiry(self, now: int, ttl: int, auth_time: int) -> int:
        if self.max_lifetime:
            return min(now + ttl, auth_time + self.max_lifetime)
        return now + ttl

    def issue_access(
        self, user: User, version: int = 0, auth_time: int | None = None
    ) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds.

        `version` is the user's token version (a bump ends every session); `auth_time`
        the log-in this session started from (kept across refreshes).
        """
        now = int(time.time())
        started = auth_time or now
        exp = self._expiry(now, self.access_ttl, started)
        claims = {
            "sub": user.user_id,
            "typ": "access",
            "name": user.name,
            "email": user.email,
            "adm": user.is_admin,
            "ver": version,
            "auth_time": started,
            "iat": now,
            "exp": exp,
            "jti": new_id(),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), exp - now

    def issue_refresh(
        self, user_id: str, family_id: str | None = None, version: int = 0,
        auth_time: int | None = None,
    ) -> IssuedRefresh:
        """A signed refresh token, in a new family unless one is given."""
        now = int(time.time())
        started = auth_time or now
        exp = self._expiry(now, self.refresh_ttl, started)
        jti = new_id()
        family = family_id or new_id()
        claims = {
            "sub": user_id,
            "typ": "refresh",
            "fam": family,
            "ver": version,
            "auth_time": started,
            "iat": now,
            "exp": exp,
            "jti": jti,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedRefresh(token, jti, family, float(exp))

    def _decode(self, token: str, typ: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": _REQUIRED}
            )
        except jwt.ExpiredSignatureError as exc:
            raise AppError(UNAUTHORIZED, "token expired") from exc
        except jwt.PyJWTError as exc:
            raise AppError(UNAUTHORIZED, "invalid token") from exc
        if claims.get("typ") != typ:
            raise AppError(UNAUTHORIZED, "invalid token")
        started = claims.get("auth_time", claims["iat"])
        if not isinstance(started, int) or not isinstance(claims.get("ver", 0), int):
            raise AppError(UNAUTHORIZED, "invalid token")
        if self.max_lifetime and time.time() > started + self.max_lifetime:
            raise AppError(UNAUTHORIZED, "session too old; log in again")
        return claims

    def verify_access(self, token: str) -> Principal:
        """The principal of a valid access token; `unauthorized` otherwise."""
        claims = self._decode(token, "access")
        # Every value is converted here, so no validation pass; and no record of which
        # fields were given (nothing reads it): a socket keeps its principal for its whole
        # life, and that set alone was ~0.5 KB of each idle socket's ~35 KB.
        return Principal.model_construct(
            set(),
            user_id=str(claims["sub"]),
            name=str(claims.get("name", "")),
            email=str(claims.get("email", "")),
            is_admin=bool(claims.get("adm", False)),
            expires_at=float(claims["exp"]),
            token_version=int(claims.get("ver", 0)),
            auth_time=float(claims.get("auth_time", claims["iat"])),
        )

    def verify_refresh(self, token: str) -> dict[str, Any]:
        """The claims of a validly signed, unexpired refresh token."""
        return self._decode(token, "refresh")
