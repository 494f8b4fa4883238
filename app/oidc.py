"""OpenID Connect log-in (authlib): authorization URL, code exchange, ID-token checks."""

from __future__ import annotations

import asyncio
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

import httpx
import httpx2
import jwt
from authlib.common.security import is_secure_transport  # type: ignore[import-untyped]
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
    AsyncOAuth2Client,
    OAuthError,
)
from joserfc import jwt as jose_jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from pydantic import BaseModel, ValidationError

from app.auth import AuthService, Session
from app.config import OIDCProviderSettings
from app.errors import (
    CONFLICT,
    FORBIDDEN,
    PROVIDER_ERROR,
    UNAUTHORIZED,
    AppError,
    invalid,
    not_found,
)
from app.models import User
from storage.users import IdentityStore, UserStore

log = logging.getLogger(__name__)

STATE_TTL_SECONDS = 600
HTTP_TIMEOUT_SECONDS = 10.0
# Clock skew allowed on exp/iat/nbf of ID tokens.
LEEWAY_SECONDS = 60
# An ID token signed by an unknown key re-fetches the JWKS (key rotation), at most this often.
JWKS_REFETCH_SECONDS = 60.0
# Asymmetric only: "none" and HS* (keyed with the client secret) are never accepted.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
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


class _Discovery(BaseModel):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    id_token_signing_alg_values_supported: list[str] = ["RS256"]


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


def _refused(message: str) -> AppError:
    return AppError(UNAUTHORIZED, message)


def _unreachable(name: str) -> AppError:
    return AppError(PROVIDER_ERROR, f"identity provider {name!r} could not be reached")


class _Provider:
    """One configured provider: its discovery document and keys, loaded once and cached."""

    def __init__(self, name: str, settings: OIDCProviderSettings, http: httpx2.AsyncClient):
        if settings.discovery_url is None:  # config fills google's; others require one
            raise ValueError(f"oidc.{name}.discovery_url is required")
        self.name = name
        self.settings = settings
        self.discovery_url = settings.discovery_url
        if not is_secure_transport(self.discovery_url):
            raise ValueError(f"oidc.{name}.discovery_url must be https (or loopback)")
        self._http = http
        secret = settings.client_secret.get_secret_value() if settings.client_secret else None
        self._oauth = AsyncOAuth2Client(
            client_id=settings.client_id,
            client_secret=secret,
            scope=settings.scopes,
            code_challenge_method="S256",
            # A public client (no secret) relies on PKCE alone.
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        self._lock = asyncio.Lock()
        self._meta: _Discovery | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
        try:
            resp = await self._http.get(url, headers=headers)
            resp.raise_for_status()
            return resp.json()
        except (httpx2.HTTPError, ValueError) as exc:
            log.warning("oidc %s: GET %s failed: %s", self.name, url, exc)
            raise _unreachable(self.name) from exc

    async def metadata(self) -> _Discovery:
        """The discovery document (fetched on first use, then cached)."""
        if self._meta is not None:
            return self._meta
        async with self._lock:
            if self._meta is None:
                data = await self._get_json(self.discovery_url)
                try:
                    meta = _Discovery.model_validate(data)
                except ValidationError as exc:
                    log.warning("oidc %s: bad discovery document: %s", self.name, exc)
                    raise _unreachable(self.name) from exc
                endpoints = (meta.authorization_endpoint, meta.token_endpoint, meta.jwks_uri)
                if not all(is_secure_transport(url) for url in endpoints):
                    log.warning("oidc %s: discovery lists non-https endpoints", self.name)
                    raise _unreachable(self.name)
                self._meta = meta
        return self._meta

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys; `refresh` re-fetches them (rate limited)."""
        meta = await self.metadata()
        async with self._lock:
            stale = refresh and time.monotonic() - self._keys_at > JWKS_REFETCH_SECONDS
            if self._keys is None or stale:
                data = await self._get_json(meta.jwks_uri)
                try:
                    self._keys = KeySet.import_key_set(data)
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    log.warning("oidc %s: bad JWKS: %s", self.name, exc)
                    raise _unreachable(self.name) from exc
                self._keys_at = time.monotonic()
            return self._keys

    def authorization_url(self, meta: _Discovery, redirect_uri: str, state: str, nonce: str,
                          verifier: str) -> str:
        """The provider's authorization URL with state, nonce and the PKCE challenge."""
        url, _ = self._oauth.create_authorization_url(
            meta.authorization_endpoint, state=state, code_verifier=verifier,
            redirect_uri=redirect_uri, nonce=nonce,
        )
        return str(url)

    async def exchange(self, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        """Trade the authorization code for tokens at the token endpoint."""
        meta = await self.metadata()
        try:
            # fetch_token also keeps the token on the client; nothing reads it back.
            token = await self._oauth.fetch_token(
                meta.token_endpoint, grant_type="authorization_code", code=code,
                redirect_uri=redirect_uri, code_verifier=verifier,
            )
        except OAuthError as exc:
            raise _refused(f"the identity provider refused the code: {exc.error}") from exc
        except (httpx2.HTTPError, httpx.HTTPError, ValueError) as exc:
            # authlib runs on httpx2 when installed (it is, via openai), else on httpx.
            log.warning("oidc %s: token request failed: %s", self.name, exc)
            raise _unreachable(self.name) from exc
        return dict(token)

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token whose signature, iss, aud, azp, exp and nonce hold."""
        meta = await self.metadata()
        algorithms = [a for a in meta.id_token_signing_alg_values_supported
                      if a in SIGNING_ALGORITHMS] or ["RS256"]
        try:
            try:
                token = jose_jwt.decode(id_token, await self.keys(), algorithms=algorithms)
            except InvalidKeyIdError:
                keys = await self.keys(refresh=True)
                token = jose_jwt.decode(id_token, keys, algorithms=algorithms)
            issuers = [meta.issuer]
            if meta.issuer == "https://accounts.google.com":
                issuers.append("accounts.google.com")  # Google documents both forms
            JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "values": issuers},
                aud={"essential": True, "value": self.settings.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except JoseError as exc:
            raise _refused(f"the ID token is not valid: {exc}") from exc
        claims = dict(token.claims)
        aud = claims["aud"]
        azp = claims.get("azp")
        if (azp is not None and azp != self.settings.client_id) or (
            isinstance(aud, list) and len(aud) > 1 and azp is None
        ):
            raise _refused("the ID token is not valid: azp")
        return claims

    async def userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        """The userinfo claims (when the ID token lacks the email), for the same subject."""
        meta = await self.metadata()
        if meta.userinfo_endpoint is None:
            return {}
        data = await self._get_json(
            meta.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
        )
        if not isinstance(data, dict) or data.get("sub") != sub:
            raise _refused("the userinfo response is for another subject")
        return data

    async def close(self) -> None:
        await self._oauth.aclose()


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
            name: _Provider(name, settings, self._http) for name, settings in providers.items()
        }

    def provider_names(self) -> list[str]:
        """The configured providers, for log-in buttons."""
        return sorted(self._providers)

    def _provider(self, name: str) -> _Provider:
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
            raise _refused("no log-in in progress in this browser (state cookie missing)")
        try:
            claims: dict[str, Any] = jwt.decode(
                state_token, self._state_key, algorithms=["HS256"],
                options={"require": ["exp", "typ", "prv", "st", "non", "cv", "nxt", "rdr"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _refused("the log-in took too long (state expired); start again") from exc
        except jwt.PyJWTError as exc:
            raise _refused("invalid log-in state") from exc
        if claims["typ"] != _STATE_TYP or claims["prv"] != name:
            raise _refused("invalid log-in state")
        if not state or not hmac.compare_digest(str(claims["st"]), state):
            raise _refused("state does not match the log-in started in this browser")
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
            raise _refused(f"the identity provider refused the log-in: {error[:100]}")
        bound = self._bound_state(name, state_token, state)
        if not code:
            raise invalid("code: missing from the callback")
        meta = await provider.metadata()
        if issuer is not None and issuer != meta.issuer:  # RFC 9207 mix-up defence
            raise _refused("the callback comes from another issuer")
        token = await provider.exchange(code, str(bound["rdr"]), str(bound["cv"]))
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise _refused("the identity provider returned no ID token")
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
