"""`/api/v1/auth`: sign-up, log-in, OAuth2 password token, refresh, log-out, me."""

from __future__ import annotations

from aiohttp import web

from app.auth import Session
from app.errors import UNAUTHORIZED, AppError
from app.keys import SETTINGS
from app.models import Principal
from app.schemas import ChangePassword, Login, RefreshRequest, Signup, TokenForm, parse
from handlers.common import (
    PRINCIPAL,
    body,
    client_ip,
    cookie_path,
    form,
    json_response,
    principal,
    services,
)

REFRESH_COOKIE_PATH = "/api/v1/auth"


def with_cookies(request: web.Request, session: Session, status: int = 200) -> web.Response:
    settings = request.app[SETTINGS].auth
    response = json_response(session.as_dict(), status=status)
    secure = settings.cookie_secure
    response.set_cookie(
        "access_token", session.access_token, max_age=session.expires_in,
        path=cookie_path(request, "/"),
        httponly=True, samesite="Lax", secure=secure,
    )
    response.set_cookie(
        "refresh_token", session.refresh_token, max_age=session.refresh_expires_in,
        path=cookie_path(request, REFRESH_COOKIE_PATH), httponly=True, samesite="Lax",
        secure=secure,
    )
    return response


async def signup(request: web.Request) -> web.Response:
    req = await body(request, Signup)
    session = await services(request).auth.signup(req.email, req.password, req.name)
    return with_cookies(request, session, status=201)


async def login(request: web.Request) -> web.Response:
    req = await body(request, Login)
    session = await services(request).auth.login(req.email, req.password, client_ip(request))
    return with_cookies(request, session)


async def token(request: web.Request) -> web.Response:
    """OAuth2 password grant (form fields `username`, `password`)."""
    fields = await form(request)
    # OAuth2 clients also send grant_type, scope, client_id...: only these two matter.
    req = parse(TokenForm, {k: fields[k] for k in ("username", "password") if k in fields})
    session = await services(request).auth.login(req.username, req.password, client_ip(request))
    return json_response({"access_token": session.access_token, "token_type": "bearer"})


async def refresh(request: web.Request) -> web.Response:
    raw = await request.read()
    req = await body(request, RefreshRequest) if raw else RefreshRequest()
    refresh_token = req.refresh_token or request.cookies.get("refresh_token")
    if not refresh_token:
        raise AppError(UNAUTHORIZED, "missing refresh token")
    session = await services(request).auth.refresh(refresh_token)
    return with_cookies(request, session)


async def logout(request: web.Request) -> web.Response:
    raw = await request.read()
    req = await body(request, RefreshRequest) if raw else RefreshRequest()
    caller = request.get(PRINCIPAL)
    await services(request).auth.logout(
        req.refresh_token or request.cookies.get("refresh_token"),
        caller.user_id if isinstance(caller, Principal) else None,
    )
    response = web.Response(status=204)
    response.del_cookie("access_token", path=cookie_path(request, "/"))
    response.del_cookie("refresh_token", path=cookie_path(request, REFRESH_COOKIE_PATH))
    return response


async def change_password(request: web.Request) -> web.Response:
    """New password: every other session ends; this one gets fresh tokens."""
    who = principal(request)
    req = await body(request, ChangePassword)
    session = await services(request).auth.change_password(
        who.user_id, req.current_password, req.new_password, client_ip(request)
    )
    return with_cookies(request, session)


async def me(request: web.Request) -> web.Response:
    user = await services(request).auth.me(principal(request).user_id)
    return json_response({"user": user.model_dump(mode="json")})


def setup(app: web.Application) -> None:
    """Register the auth routes."""
    app.router.add_post("/api/v1/auth/signup", signup)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/auth/token", token)
    app.router.add_post("/api/v1/auth/refresh", refresh)
    app.router.add_post("/api/v1/auth/logout", logout)
    app.router.add_post("/api/v1/auth/password", change_password)
    app.router.add_get("/api/v1/auth/me", me)
