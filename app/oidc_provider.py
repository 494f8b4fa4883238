"""One OpenID Connect provider (authlib): discovery, keys, code exchange, ID-token checks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
import httpx2
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

from app.config import OIDCProviderSettings
from app.errors import PROVIDER_ERROR, UNAUTHORIZED, AppError

log = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = 10.0
# Clock skew allowed on exp/iat/nbf of ID tokens.
LEEWAY_SECONDS = 60
# An ID token signed by an unknown key re-fetches the JWKS (key rotation), at most this often.
JWKS_REFETCH_SECONDS = 60.0
# Asymmetric only: "none" and HS* (keyed with the client secret) are never accepted.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class Discovery(BaseModel):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    id_token_signing_alg_values_supported: list[str] = ["RS256"]


def refused(message: str) -> AppError:
    return AppError(UNAUTHORIZED, message)


def unreachable(name: str) -> AppError:
    return AppError(PROVIDER_ERROR, f"identity provider {name!r} could not be reached")


class OIDCProvider:
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
        self._meta: Discovery | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
        try:
            resp = await self._http.get(url, headers=headers)
            resp.raise_for_status()
            return resp.json()
        except (httpx2.HTTPError, ValueError) as exc:
            log.warning("oidc %s: GET %s failed: %s", self.name, url, exc)
            raise unreachable(self.name) from exc

    async def metadata(self) -> Discovery:
        """The discovery document (fetched on first use, then cached)."""
        if self._meta is not None:
            return self._meta
        async with self._lock:
            if self._meta is None:
                data = await self._get_json(self.discovery_url)
                try:
                    meta = Discovery.model_validate(data)
                except ValidationError as exc:
                    log.warning("oidc %s: bad discovery document: %s", self.name, exc)
                    raise unreachable(self.name) from exc
                endpoints = (meta.authorization_endpoint, meta.token_endpoint, meta.jwks_uri)
                if not all(is_secure_transport(url) for url in endpoints):
                    log.warning("oidc %s: discovery lists non-https endpoints", self.name)
                    raise unreachable(self.name)
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
                    raise unreachable(self.name) from exc
                self._keys_at = time.monotonic()
            return self._keys

    def authorization_url(self, meta: Discovery, redirect_uri: str, state: str, nonce: str,
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
            raise refused(f"the identity provider refused the code: {exc.error}") from exc
        except (httpx2.HTTPError, httpx.HTTPError, ValueError) as exc:
            # authlib runs on httpx2 when installed (it is, via openai), else on httpx.
            log.warning("oidc %s: token request failed: %s", self.name, exc)
            raise unreachable(self.name) from exc
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
            raise refused(f"the ID token is not valid: {exc}") from exc
        claims = dict(token.claims)
        aud = claims["aud"]
        azp = claims.get("azp")
        if (azp is not None and azp != self.settings.client_id) or (
            isinstance(aud, list) and len(aud) > 1 and azp is None
        ):
            raise refused("the ID token is not valid: azp")
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
            raise refused("the userinfo response is for another subject")
        return data

    async def close(self) -> None:
        await self._oauth.aclose()
