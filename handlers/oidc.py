"""`/api/v1/auth/{provider}/login|callback` (OpenID Connect) and `/auth/validate-token`."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from app.errors import not_found
from app.keys import SETTINGS
from app.oidc import OIDCService
from app.schemas import Payload
from handlers.auth import REFRESH_COOKIE_PATH, with_cookies
from handlers.common import json_response, principal, query, services

STATE_COOKIE = "parlour_oidc_state"


class OIDCLogin(Payload):
    next: str | None = None


class OIDCCallback(BaseModel):
    # Providers add their own parameters (scope, authuser, session_state, ...).
    model_config = ConfigDict(extra="ignore")

    code: str | None = None
    state: str | None = None
    error: str | None = None
    iss: str | None = None


def _oidc(request: web.Request) -> OIDCService:
    oidc = services(request).oidc
    if oidc is None:
        raise not_found("identity provider")
    return oidc


async def login(request: web.Request) -> web.Response:
    """Redirect to the provider, binding state, nonce and PKCE verifier to this browser."""
    provider = request.match_info["provider"]
    oidc = _oidc(request)
    redirect_uri = oidc.configured_redirect_uri(provider) or str(
        request.url.with_path(f"/api/v1/auth/{provider}/callback").with_query(None)
    )
    req = query(request, OIDCLogin)
    start = await oidc.start_login(provider, redirect_uri, req.next)
    response = web.Response(status=302, headers={"Location": start.authorization_url})
    response.set_cookie(
        STATE_COOKIE, start.state_token, max_age=start.max_age, path=REFRESH_COOKIE_PATH,
        httponly=True, samesite="Lax", secure=request.app[SETTINGS].auth.cookie_secure,
    )
    return response


async def callback(request: web.Request) -> web.Response:
    """Finish the log-in: Parlour's session cookies, then back to the app."""
    provider = request.match_info["provider"]
    oidc = _oidc(request)
    req = query(request, OIDCCallback)
    result = await oidc.finish_login(
        provider, code=req.code, state=req.state, error=req.error, issuer=req.iss,
        state_token=request.cookies.get(STATE_COOKIE),
    )
    response = web.Response(status=302, headers={"Location": result.next_path})
    # The very cookies of a password log-in.
    response.cookies.update(with_cookies(request, result.session).cookies)
    response.del_cookie(STATE_COOKIE, path=REFRESH_COOKIE_PATH)
    return response


async def validate_token(request: web.Request) -> web.Response:
    """`{valid: true, user}` for a valid access token (Bearer or cookie); 401 otherwise."""
    user = await services(request).auth.me(principal(request).user_id)
    return json_response({"valid": True, "user": user.model_dump(mode="json")})


async def providers(request: web.Request) -> web.Response:
    """The configured single sign-on providers (the log-in page shows a button each)."""
    oidc = services(request).oidc
    return json_response({"providers": oidc.provider_names() if oidc is not None else []})


def setup(app: web.Application) -> None:
    """Register the OpenID Connect routes."""
    app.router.add_get("/api/v1/auth/providers", providers)
    app.router.add_get("/api/v1/auth/validate-token", validate_token)
    app.router.add_get("/api/v1/auth/{provider}/login", login)
    app.router.add_get("/api/v1/auth/{provider}/callback", callback)
