"""Cross-site request defences: allowed Origins and JSON content types.

A browser attaches Parlour's cookies to requests that other sites make, so a request
that the cookie authenticates and that changes something (POST, PUT, PATCH, DELETE, a
WebSocket upgrade) must come from an allowed Origin: the server's own, or one listed in
`server.cors_origins`. A request with `Authorization: Bearer` and no cookie cannot be
forged by another site and needs no Origin. Sign-up and log-in are refused from other
origins too (login CSRF). JSON routes take only a JSON content type (see `body`), and a
`text/plain` body (what an HTML form or a simple cross-site `fetch` can send) is refused
on every state-changing route, with 415.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from app.errors import FORBIDDEN, INVALID_PAYLOAD, AppError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUTH_COOKIES = ("access_token", "refresh_token")
UNSUPPORTED_MEDIA_TYPE = 415


def _first(value: str | None) -> str | None:
    return value.split(",")[0].strip() if value else None


class OriginPolicy:
    """Which browser origins may act with the user's cookies."""

    def __init__(self, configured: list[str]) -> None:
        self._configured = frozenset(o.rstrip("/") for o in configured)

    def allows(
        self, origin: str, scheme: str, host: str | None, headers: Mapping[str, str]
    ) -> bool:
        """The server's own origin (as the browser sees it, behind a proxy too) or a listed one."""
        if origin in self._configured:
            return True
        if not host:
            return False
        own = {f"{scheme}://{host}"}
        fwd_proto, fwd_host = _first(headers.get("X-Forwarded-Proto")), _first(
            headers.get("X-Forwarded-Host")
        )
        if fwd_proto or fwd_host:
            own.add(f"{fwd_proto or scheme}://{fwd_host or host}")
        return origin in own

    def socketio(self, origin: str | None, environ: dict[str, Any]) -> bool:
        """python-engineio's `cors_allowed_origins` callable: the same rule as REST."""
        if origin is None:
            return True
        headers = {
            "X-Forwarded-Proto": environ.get("HTTP_X_FORWARDED_PROTO", ""),
            "X-Forwarded-Host": environ.get("HTTP_X_FORWARDED_HOST", ""),
        }
        return self.allows(
            origin, str(environ.get("wsgi.url_scheme", "http")), environ.get("HTTP_HOST"),
            headers,
        )


def _cookie_or_anonymous(request: web.Request) -> bool:
    """True unless the request is authenticated by a Bearer header alone."""
    if any(name in request.cookies for name in AUTH_COOKIES):
        return True
    return not request.headers.get("Authorization", "").lower().startswith("bearer ")


def _changes_state(request: web.Request) -> bool:
    if request.method in UNSAFE_METHODS:
        return True
    return request.headers.get("Upgrade", "").lower() == "websocket"


def origin_middleware(policy: OriginPolicy) -> Any:
    """403 for cross-origin state changes with cookies; 415 for text/plain bodies."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Engine.IO checks its own requests with the same policy (OriginPolicy.socketio).
        if _changes_state(request) and not request.path.startswith("/socket.io/"):
            origin = request.headers.get("Origin")
            if origin is not None and _cookie_or_anonymous(request) and not policy.allows(
                origin, request.scheme, request.host, request.headers
            ):
                raise AppError(
                    FORBIDDEN,
                    f"cross-origin request refused: Origin {origin[:100]} is not allowed "
                    "(server.cors_origins lists the allowed ones)",
                )
            if request.method in UNSAFE_METHODS and request.body_exists and (
                request.content_type == "text/plain"
            ):
                raise unsupported_media_type(request.content_type, "application/json")
        return await handler(request)

    return middleware


def unsupported_media_type(got: str, wanted: str) -> AppError:
    """415 with the stable code `invalid_payload`, naming the expected type."""
    return AppError(
        INVALID_PAYLOAD, f"Content-Type: expected {wanted}, got {got[:100]}",
        status=UNSUPPORTED_MEDIA_TYPE,
    )
