"""OpenID Connect log-in: state, the callback, accounts and links (providers: oidc_provider)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
import jwt

from app.auth import AuthService, Session
from app.config import OIDCProviderSettings
from app.errors import CONFLICT, FORBIDDEN, UNAUTHORIZED, AppError, invalid, not_found
from app.models import User
from app.oidc_provider import HTTP_TIMEOUT_SECONDS, OIDCProvider, refused
from storage.users import IdentityStore, UserStore

log = logging.getLogger(__name__)

STATE_TTL_SECONDS = 600
MAX_NAME_CHARS = 100
_STATE_TYP = "oidc_state"
_LINK_TYP = "oidc_link"
# How long a pending link waits for the account's password.
LINK_TTL_SECONDS = 600
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class LoginStart:
    """Where to send the browser, and the signed state to bind to it (a cookie)."""

    authorization_url: str
    state_token: str
    max_age: int


@dataclass(frozen=True)
class LoginResult:
    """A finished log-in: Parlour's session and the local path to land on."""

    session: Session
    next_path: str


@dataclass(frozen=True)
class LinkPending:
    """The provider's email belongs to a password account: its owner must confirm.

    `link_token` (a short-lived signed cookie) names the account and the identity;
    `POST /api/v1/auth/link {password}` finishes the log-in and links them.
    """

    link_token: str
    email: str
    provider: str
    max_age: int


def safe_next_path(path: str | None) -> str:
    """A local path to redirect to after log-in; `/` when none, `invalid_payload` if unsafe."""
    if not path:
        return "/"
    parts = urlsplit(path)
    if (
        len(path) > 2048
        or not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or parts.scheme
        or parts.netloc
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
    ):
        raise invalid("next: must be a path on this site, like /chat/abc")
    return path


def _email_and_name(claims: Mapping[str, Any]) -> tuple[str, str, bool]:
    """The email, a display name, and whether the provider asserts the email is verified."""
    email = claims.get("email")
    if not isinstance(email, str) or len(email) > 320 or not _EMAIL.fullmatch(email):
        raise AppError(FORBIDDEN, "the identity provider did not share an email address")
    verified = claims.get("email_verified") in (True, "true")
    # An email the provider says it did not verify never names an account.
    if claims.get("email_verified", True) not in (True, "true"):
        raise AppError(FORBIDDEN, "the email address is not verified by the identity provider")
    given = " ".join(
        str(claims[k]) for k in ("given_name", "family_name") if isinstance(claims.get(k), str)
    )
    for candidate in (claims.get("name"), given, claims.get("preferred_username")):
        if isinstance(candidate, str) and candidate.strip():
            return email.lower(), candidate.strip()[:MAX_NAME_CHARS], verified
    return email.lower(), email.split("@")[0][:MAX_NAME_CHARS], verified


class OIDCService:
    """Log-in through the configured OpenID Connect providers."""

    def __init__(
        self,
        providers: Mapping[str, OIDCProviderSettings],
        auth: AuthService,
        users: UserStore,
        identities: IdentityStore,
        secret: str,
        *,
        link_requires_password: bool = True,
    ) -> None:
        self._auth = auth
        self._users = users
        self._identities = identities
        self._link_requires_password = link_requires_password
        # A key of its own: a state token can never pass for an access token.
        self._state_key = hmac.new(secret.encode(), b"parlour-oidc-state", hashlib.sha256).digest()
        self._http = httpx2.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS)
        self._providers = {
            name: OIDCProvider(name, settings, self._http) for name, settings in providers.items()
        }

    def provider_names(self) -> list[str]:
        """The configured providers, for log-in buttons."""
        return sorted(self._providers)

    def _provider(self, name: str) -> OIDCProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise not_found("identity provider")
        return provider

    def configured_redirect_uri(self, name: str) -> str | None:
        """The callback URL configured for a provider (None: build it from the request)."""
        return self._provider(name).settings.redirect_uri

    async def start_login(self, name: str, redirect_uri: str, next_path: str | None) -> LoginStart:
        """The authorization URL and the state (state, nonce, PKCE verifier) to bind."""
        provider = self._provider(name)
        landing = safe_next_path(next_path)
        meta = await provider.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        now = int(time.time())
        state_token = jwt.encode(
            {"typ": _STATE_TYP, "prv": name, "st": state, "non": nonce, "cv": verifier,
             "nxt": landing, "rdr": redirect_uri, "iat": now, "exp": now + STATE_TTL_SECONDS},
            self._state_key, algorithm="HS256",
        )
        url = provider.authorization_url(meta, redirect_uri, state, nonce, verifier)
        return LoginStart(url, state_token, STATE_TTL_SECONDS)

    def _bound_state(self, name: str, state_token: str | None, state: str | None) -> dict[str, Any]:
        if not state_token:
            raise refused("no log-in in progress in this browser (state cookie missing)")
        try:
            claims: dict[str, Any] = jwt.decode(
                state_token, self._state_key, algorithms=["HS256"],
                options={"require": ["exp", "typ", "prv", "st", "non", "cv", "nxt", "rdr"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise refused("the log-in took too long (state expired); start again") from exc
        except jwt.PyJWTError as exc:
            raise refused("invalid log-in state") from exc
        if claims["typ"] != _STATE_TYP or claims["prv"] != name:
            raise refused("invalid log-in state")
        if not state or not hmac.compare_digest(str(claims["st"]), state):
            raise refused("state does not match the log-in started in this browser")
        return claims

    async def finish_login(
        self,
        name: str,
        *,
        code: str | None,
        state: str | None,
        error: str | None,
        issuer: str | None,
        state_token: str | None,
    ) -> LoginResult | LinkPending:
        """Check the callback, the code and the ID token; find or create the user; log in.

        The identity (issuer + subject) names the account. A first sign-in whose email
        belongs to an existing account links to it only when the provider asserts the
        email verified, and (auth.sso_link_requires_password) once its password confirms.
        """
        provider = self._provider(name)
        if error:  # no session follows, so this needs no state (some providers send none)
            raise refused(f"the identity provider refused the log-in: {error[:100]}")
        bound = self._bound_state(name, state_token, state)
        if not code:
            raise invalid("code: missing from the callback")
        meta = await provider.metadata()
        if issuer is not None and issuer != meta.issuer:  # RFC 9207 mix-up defence
            raise refused("the callback comes from another issuer")
        token = await provider.exchange(code, str(bound["rdr"]), str(bound["cv"]))
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise refused("the identity provider returned no ID token")
        claims = await provider.verify_id_token(id_token, str(bound["non"]))
        access_token = token.get("access_token")
        if "email" not in claims and isinstance(access_token, str):
            info = await provider.userinfo(access_token, str(claims["sub"]))
            claims = {**info, **claims}
        subject = str(claims["sub"])
        user = await self._linked_user(meta.issuer, subject)
        if user is None:
            email, display_name, verified = _email_and_name(claims)
            self._auth.check_allowed(email)
            existing = await self._users.by_email(email)
            if existing is None:
                user = await self._create(email, display_name)
            else:
                pending = await self._link_or_confirm(
                    existing, verified, name, meta.issuer, subject, str(bound["nxt"])
                )
                if pending is not None:
                    return pending
                user = existing
            await self._identities.link(meta.issuer, subject, user.user_id, name)
        self._auth.check_allowed(user.email)
        log.info("oidc %s: log-in of %s", name, user.user_id)
        return LoginResult(await self._auth.session_for(user), str(bound["nxt"]))

    async def _linked_user(self, issuer: str, subject: str) -> User | None:
        user_id = await self._identities.user_id(issuer, subject)
        if user_id is None:
            return None
        user = await self._users.by_id(user_id)
        if user is None:  # the account was deleted: the identity is free again
            await self._identities.forget_user(user_id)
        return user

    async def _link_or_confirm(
        self, user: User, verified: bool, provider: str, issuer: str, subject: str,
        next_path: str,
    ) -> LinkPending | None:
        """None: link `user` now; else the confirmation its owner must give (password).

        Never on an email the provider does not assert as verified: anyone can put any
        address in an account at some providers.
        """
        if not verified:
            raise AppError(
                CONFLICT,
                "an account with this email already exists; the identity provider does "
                "not vouch for the email, so log in with the account's password instead",
            )
        found = await self._users.password_hash(user.email)
        has_password = found is not None and found[1] is not None
        if not has_password:
            # Made by single sign-on before identities were kept: the same provider's
            # verified email created it.
            if not await self._identities.has_any(user.user_id):
                return None
            raise AppError(
                CONFLICT, "an account with this email signs in with another provider"
            )
        if not self._link_requires_password:
            return None
        now = int(time.time())
        token = jwt.encode(
            {"typ": _LINK_TYP, "uid": user.user_id, "eml": user.email, "iss": issuer,
             "sub": subject, "prv": provider, "nxt": next_path, "iat": now,
             "exp": now + LINK_TTL_SECONDS},
            self._state_key, algorithm="HS256",
        )
        return LinkPending(token, user.email, provider, LINK_TTL_SECONDS)

    def pending_link(self, link_token: str | None) -> dict[str, Any]:
        """The claims of a link waiting for its password; `unauthorized` if none is."""
        if not link_token:
            raise AppError(UNAUTHORIZED, "no single sign-on link is waiting in this browser")
        try:
            claims: dict[str, Any] = jwt.decode(
                link_token, self._state_key, algorithms=["HS256"],
                options={"require": ["exp", "typ", "uid", "eml", "iss", "sub", "prv", "nxt"]},
            )
        except jwt.PyJWTError as exc:
            raise AppError(UNAUTHORIZED, "the link expired or is invalid; sign in again") from exc
        if claims["typ"] != _LINK_TYP:
            raise AppError(UNAUTHORIZED, "invalid link")
        return claims

    async def confirm_link(
        self, link_token: str | None, password: str, client_ip: str
    ) -> LoginResult:
        """The account's password confirms the link: log in, and link the identity."""
        claims = self.pending_link(link_token)
        # The password log-in itself: rate limited, constant time, whitelist.
        session = await self._auth.login(str(claims["eml"]), password, client_ip)
        if session.user.user_id != claims["uid"]:
            raise AppError(UNAUTHORIZED, "wrong email or password")
        await self._identities.link(
            str(claims["iss"]), str(claims["sub"]), session.user.user_id, str(claims["prv"])
        )
        log.info("oidc %s: linked to %s", claims["prv"], session.user.user_id)
        return LoginResult(session, str(claims["nxt"]))

    async def _create(self, email: str, name: str) -> User:
        try:
            return await self._auth.create_user(email, None, name)
        except AppError as exc:
            # Two first log-ins at once: the other one created the account.
            if exc.code != CONFLICT:
                raise
            user = await self._users.by_email(email)
            if user is None:
                raise
            return user

    async def close(self) -> None:
        """Close the HTTP clients."""
        for provider in self._providers.values():
            await provider.close()
        await self._http.aclose()
