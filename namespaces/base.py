"""Dispatch for every client event: validation, the ack envelope, errors, logging."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any

import socketio

from app.auth import Authenticator
from app.errors import (
    FORBIDDEN,
    INTERNAL,
    UNAUTHORIZED,
    AppError,
    error_from_exception,
    invalid,
)
from app.events import Emitter, user_channel
from app.metrics import UNKNOWN_EVENT, Metrics
from app.models import Principal
from app.schemas import AuthRefresh, parse
from namespaces.connections import ConnectionRegistry
from namespaces.server import ack_requested

log = logging.getLogger("parlour.events")

# How much of an unknown event's name goes into its error message and log line.
MAX_EVENT_NAME_SHOWN = 64

Handler = Callable[[str, Principal, Any], Awaitable[dict[str, Any] | None]]


def token_from_environ(environ: dict[str, Any], auth: Any) -> str | None:
    """The access token from the auth payload, the cookie, or a Bearer header."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    header = environ.get("HTTP_AUTHORIZATION", "")
    if isinstance(header, str) and header.lower().startswith("bearer "):
        return header[7:].strip()
    cookie_header = environ.get("HTTP_COOKIE")
    if cookie_header:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(cookie_header)
        except Exception:
            return None
        if "access_token" in cookie:
            return cookie["access_token"].value
    return None


def _shown_name(event: object) -> str:
    """An unknown event's name as shown in errors and logs: short, and always a string."""
    if isinstance(event, str):
        return event[:MAX_EVENT_NAME_SHOWN]
    return f"<{type(event).__name__}>"


def remote_address(environ: dict[str, Any]) -> str:
    """The peer address of the request that opened the Engine.IO session."""
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return remote if isinstance(remote, str) and remote else "unknown"


class BaseNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Authenticates on connect and wraps every event in `{ok, data}` / `{ok, error}`."""

    def __init__(
        self,
        namespace: str,
        authenticator: Authenticator,
        connections: ConnectionRegistry,
        emitter: Emitter,
        metrics: Metrics,
    ) -> None:
        super().__init__(namespace)
        self._authenticator = authenticator
        self._connections = connections
        self._emitter = emitter
        self._metrics = metrics
        self._handlers: dict[str, Handler] = {"auth_refresh": self._auth_refresh}

    @property
    def events(self) -> frozenset[str]:
        """The client events this namespace answers (tests derive their matrix from it)."""
        return frozenset(self._handlers)

    def handle(self, event: str, handler: Handler) -> None:
        """Register the handler of a client event."""
        self._handlers[event] = handler

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            await self._connections.check_connect_rate(remote_address(environ))
        except AppError as exc:
            raise self._refused(exc) from exc
        token = token_from_environ(environ, auth)
        try:
            if token is None:
                raise AppError(UNAUTHORIZED, "missing token")
            principal = await self._authenticator.authenticate(token)
        except AppError as exc:
            # A key whose owner left the whitelist is forbidden, not unauthorized.
            code = exc.code if exc.code == FORBIDDEN else UNAUTHORIZED
            self._metrics.error(code)
            raise socketio.exceptions.ConnectionRefusedError(code, {"code": code}) from exc
        try:
            self._connections.add(sid, principal, self.namespace)
        except AppError as exc:
            raise self._refused(exc) from exc
        await self.enter_room(sid, user_channel(principal.user_id))
        self._metrics.connections.labels(namespace=self.namespace).inc()

    def _refused(self, err: AppError) -> Exception:
        """The connect_error of a limit: message and data carry its code."""
        self._metrics.error(err.code)
        return socketio.exceptions.ConnectionRefusedError(  # type: ignore[no-any-return]
            err.code, {"code": err.code, "message": err.message}
        )

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self._connections.pop(sid)
        if conn is None:
            return
        self._metrics.connections.labels(namespace=self.namespace).dec()
        await self.disconnected(sid, conn.principal, conn.rooms)

    async def disconnected(self, sid: str, principal: Principal, rooms: set[str]) -> None:
        """Clean up after a socket (presence); overridden by namespaces with rooms."""
        return None

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid = args[0]
        payload = args[1] if len(args) > 1 else None
        # Client input never becomes a metric label (nor a long log line).
        known = isinstance(event, str) and event in self._handlers
        label = event if known else UNKNOWN_EVENT
        shown = event if known else _shown_name(event)
        started = time.perf_counter()
        code = "ok"
        try:
            conn = self._connections.get(sid)
            if conn is None:
                raise AppError(UNAUTHORIZED, "not connected")
            handler = self._handlers.get(event) if known else None
            if handler is None:
                raise invalid(f"event: unknown event {shown!r}")
            data = await handler(sid, conn.principal, payload)
            reply: dict[str, Any] = {"ok": True, "data": data or {}}
        except Exception as exc:
            err = error_from_exception(exc)
            code = err.code
            if err.code == INTERNAL:
                log.exception("event %s failed", label)
            self._metrics.error(err.code)
            reply = {"ok": False, "error": err.as_dict()}
            if not ack_requested.get():
                body: dict[str, Any] = {**err.as_dict(), "event": shown}
                if isinstance(payload, dict) and isinstance(payload.get("room_id"), str):
                    body["room_id"] = payload["room_id"]
                await self._emitter.error(sid, body)
        elapsed = time.perf_counter() - started
        self._metrics.event(label, code, elapsed)
        # One line per event: refusals and failures at INFO, the rest at DEBUG (built
        # only when that level is on: it is the commonest line the server writes).
        level = logging.DEBUG if code == "ok" else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level, "event %s sid=%s outcome=%s duration_ms=%.1f",
                shown, sid, code, elapsed * 1000,
                extra={"event": shown, "outcome": code, "duration_ms": round(elapsed * 1000, 1)},
            )
        return reply

    async def _auth_refresh(self, sid: str, principal: Principal, payload: Any) -> dict[str, Any]:
        req = parse(AuthRefresh, payload)
        fresh = await self._authenticator.authenticate(req.token)
        if fresh.user_id != principal.user_id:
            raise AppError(UNAUTHORIZED, "token belongs to another user")
        conn = self._connections.get(sid)
        if conn is not None:
            conn.principal = fresh
        return {"expires_at": fresh.expires_at}
