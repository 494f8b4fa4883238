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
from app.metrics import Metrics
from app.models import Principal
from app.schemas import AuthRefresh, parse
from namespaces.connections import ConnectionRegistry
from namespaces.server import ack_requested

log = logging.getLogger("parlour.events")

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

    def handle(self, event: str, handler: Handler) -> None:
        """Register the handler of a client event."""
        self._handlers[event] = handler

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
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
        self._connections.add(sid, principal, self.namespace)
        await self.enter_room(sid, user_channel(principal.user_id))
        self._metrics.connections.labels(namespace=self.namespace).inc()

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
        started = time.perf_counter()
        code = "ok"
        try:
            conn = self._connections.get(sid)
            if conn is None:
                raise AppError(UNAUTHORIZED, "not connected")
            handler = self._handlers.get(event)
            if handler is None:
                raise invalid(f"event: unknown event {event!r}")
            data = await handler(sid, conn.principal, payload)
            reply: dict[str, Any] = {"ok": True, "data": data or {}}
        except Exception as exc:
            err = error_from_exception(exc)
            code = err.code
            if err.code == INTERNAL:
                log.exception("event %s failed", event)
            self._metrics.error(err.code)
            reply = {"ok": False, "error": err.as_dict()}
            if not ack_requested.get():
                body: dict[str, Any] = {**err.as_dict(), "event": event}
                if isinstance(payload, dict) and isinstance(payload.get("room_id"), str):
                    body["room_id"] = payload["room_id"]
                await self._emitter.error(sid, body)
        elapsed = time.perf_counter() - started
        self._metrics.event(event, code, elapsed)
        log.info(
            "event %s sid=%s outcome=%s duration_ms=%.1f",
            event, sid, code, elapsed * 1000,
            extra={"event": event, "outcome": code, "duration_ms": round(elapsed * 1000, 1)},
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
