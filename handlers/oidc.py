"""`/api/v1/auth/{provider}/login|callback` (OpenID Connect), `/auth/validate-token` and
the landing page `/login-success-redirect`."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from yarl import URL

from app.errors import not_found
from app.keys import SETTINGS, WEB_ROOT
from app.oidc import LinkPending, OIDCService
from app.schemas import Payload
from handlers.auth import REFRESH_COOKIE_PATH, with_cookies
from handlers.common import (
    body,
    client_ip,
    cookie_path,
    json_response,
    principal,
    query,
    services,
)

STATE_COOKIE = "parlour_oidc_state"
LINK_COOKIE = "parlour_sso_link"
# Where the browser lands when a sign-on must be confirmed with the account's password.
LINK_PAGE = "/?link=sso"


class LinkConfirm(Payload):
    password: str = Field(min_length=1, max_length=4096)


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
    base = request.app[SETTINGS].server.base_path
    redirect_uri = oidc.configured_redirect_uri(provider) or str(
        request.url.with_path(f"{base}/api/v1/auth/{provider}/callback").with_query(None)
    )
    req = query(request, OIDCLogin)
    start = await oidc.start_login(provider, redirect_uri, req.next)
    response = web.Response(status=302, headers={"Location": start.authorization_url})
    response.set_cookie(
        STATE_COOKIE, start.state_token, max_age=start.max_age,
        path=cookie_path(request, REFRESH_COOKIE_PATH),
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
    if isinstance(result, LinkPending):
        # The web client asks for the account's password (GET/POST /api/v1/auth/link).
        base = request.app[SETTINGS].server.base_path
        response = web.Response(status=302, headers={"Location": base + LINK_PAGE})
        response.set_cookie(
            LINK_COOKIE, result.link_token, max_age=result.max_age,
            path=cookie_path(request, REFRESH_COOKIE_PATH), httponly=True, samesite="Lax",
            secure=request.app[SETTINGS].auth.cookie_secure,
        )
        response.del_cookie(STATE_COOKIE, path=cookie_path(request, REFRESH_COOKIE_PATH))
        return response
    svc = services(request)
    # No cookies on the provider's redirect: a one-time token the landing page trades at
    # /validate-token (app/login_tokens.py). The session made above is never handed out
    # (only its hash is stored; it expires unused). Not logged out: that would end the
    # user's sessions on every device.
    assert svc.login_tokens is not None
    token = await svc.login_tokens.issue(result.session.user.user_id)
    base = request.app[SETTINGS].server.base_path
    landing = URL(f"{base}/login-success-redirect").with_query(
        token=token, next=base + result.next_path
    )
    response = web.Response(status=302, headers={
        "Location": str(landing), "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    })
    response.del_cookie(STATE_COOKIE, path=cookie_path(request, REFRESH_COOKIE_PATH))
    return response


class ValidateToken(Payload):
    token: str | None = Field(None, min_length=1, max_length=256)


class LoginLanding(BaseModel):
    """The landing page's query: read by its script, not by the server."""

    token: str | None = None
    next: str | None = None


async def pending_link(request: web.Request) -> web.Response:
    """The link waiting for a password in this browser: `{email, provider}`; 401 if none."""
    claims = _oidc(request).pending_link(request.cookies.get(LINK_COOKIE))
    return json_response({"email": claims["eml"], "provider": claims["prv"]})


async def confirm_link(request: web.Request) -> web.Response:
    """The account's password links the single sign-on identity and logs in."""
    req = await body(request, LinkConfirm)
    result = await _oidc(request).confirm_link(
        request.cookies.get(LINK_COOKIE), req.password, client_ip(request)
    )
    response = with_cookies(request, result.session)
    response.del_cookie(LINK_COOKIE, path=cookie_path(request, REFRESH_COOKIE_PATH))
    return response


async def validate_token(request: web.Request) -> web.Response:
    """With `?token=`: trade a one-time log-in token for the session cookies (once).

    Without: `{valid: true, user}` for a valid access token (Bearer or cookie); 401 otherwise.
    """
    svc = services(request)
    req = query(request, ValidateToken)
    if req.token is not None:
        assert svc.login_tokens is not None
        session = await svc.login_tokens.redeem(req.token)
        response = with_cookies(request, session)
        response.headers["Cache-Control"] = "no-store"
        return response
    user = await svc.auth.me(principal(request).user_id)
    return json_response({"valid": True, "user": user.model_dump(mode="json")})


async def login_success(request: web.Request) -> web.StreamResponse:
    """The landing page after single sign-on: its script trades the one-time token."""
    return web.FileResponse(request.app[WEB_ROOT] / "login-success.html", headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    })


async def providers(request: web.Request) -> web.Response:
    """The configured single sign-on providers (the log-in page shows a button each)."""
    oidc = services(request).oidc
    return json_response({"providers": oidc.provider_names() if oidc is not None else []})


def setup(app: web.Application) -> None:
    """Register the OpenID Connect routes."""
    app.router.add_get("/api/v1/auth/providers", providers)
    app.router.add_get("/api/v1/auth/validate-token", validate_token)
    app.router.add_get("/login-success-redirect", login_success)
    app.router.add_get("/api/v1/auth/link", pending_link)
    app.router.add_post("/api/v1/auth/link", confirm_link)
    app.router.add_get("/api/v1/auth/{provider}/login", login)
    app.router.add_get("/api/v1/auth/{provider}/callback", callback)
