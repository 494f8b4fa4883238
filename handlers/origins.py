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
from urllib.parse import urlsplit

from aiohttp import web

from app.errors import FORBIDDEN, INVALID_PAYLOAD, AppError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUTH_COOKIES = ("access_token", "refresh_token")
UNSUPPORTED_MEDIA_TYPE = 415


def _host_port(netloc: str, default_port: str) -> tuple[str, str]:
    """("example.com", "443") from "example.com" or "Example.com:443" ([v6] too)."""
    host, sep, port = netloc.lower().rpartition(":")
    if not sep or "]" in port:  # no port (a bare name, or an IPv6 literal's colons)
        return netloc.lower(), default_port
    return host, port


def _first(value: str | None) -> str | None:
    return value.split(",")[0].strip() if value else None


class OriginPolicy:
    """Which browser origins may act with the user's cookies."""

    def __init__(self, configured: list[str]) -> None:
        self._configured = frozenset(o.rstrip("/") for o in configured)

    def allows(self, origin: str, host: str | None, headers: Mapping[str, str]) -> bool:
        """The server's own origin (as the browser sees it, behind a proxy too) or a listed one.

        Own means the same host and port as the request's `Host` (or `X-Forwarded-Host`),
        over http or https: TLS is often ended by a proxy that does not say so.
        """
        if origin in self._configured:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        default = "443" if parts.scheme == "https" else "80"
        wanted = _host_port(parts.netloc, default)
        return any(
            own and _host_port(own, default) == wanted
            for own in (host, _first(headers.get("X-Forwarded-Host")))
        )

    def socketio(self, origin: str | None, environ: dict[str, Any]) -> bool:
        """python-engineio's `cors_allowed_origins` callable: the same rule as REST."""
        if origin is None:
            return True
        headers = {"X-Forwarded-Host": environ.get("HTTP_X_FORWARDED_HOST", "")}
        return self.allows(origin, environ.get("HTTP_HOST"), headers)


def _cookie_or_anonymous(request: web.Request) -> bool:
    """True unless the request carries its credential itself and no cookie.

    Itself: `Authorization: Bearer`, or a WebSocket's `?token=`; another site cannot
    know either, so such a request cannot be forged.
    """
    if any(name in request.cookies for name in AUTH_COOKIES):
        return True
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return False
    return not (request.method == "GET" and request.query.get("token"))


def _changes_state(request: web.Request) -> bool:
    if request.method in UNSAFE_METHODS:
        return True
    return request.headers.get("Upgrade", "").lower() == "websocket"


def origin_middleware(policy: OriginPolicy) -> Any:
    """403 for cross-origin state changes with cookies; 415 for text/plain bodies."""

    @web.middleware
    def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Awaitable[web.StreamResponse]:
        # Not a coroutine: the handler's awaitable is handed back, so this frame does not
        # stay alive as long as the request (a WebSocket's: the connection's life).
        # Engine.IO checks its own requests with the same policy (OriginPolicy.socketio).
        if _changes_state(request) and not request.path.startswith("/socket.io/"):
            origin = request.headers.get("Origin")
            if origin is not None and _cookie_or_anonymous(request) and not policy.allows(
                origin, request.host, request.headers
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
        return handler(request)

    return middleware


def unsupported_media_type(got: str, wanted: str) -> AppError:
    """415 with the stable code `invalid_payload`, naming the expected type."""
    return AppError(
        INVALID_PAYLOAD, f"Content-Type: expected {wanted}, got {got[:100]}",
        status=UNSUPPORTED_MEDIA_TYPE,
    )
