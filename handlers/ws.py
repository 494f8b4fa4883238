"""Plain WebSocket `/api/v1/ws/chat?session_id=` for clients without Socket.IO."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from typing import Any, Literal

import orjson
from aiohttp import WSMsgType, web
from pydantic import Field

from app.assistant.ask import AskService
from app.auth import Authenticator
from app.errors import UNAUTHORIZED, AppError, error_from_exception, invalid
from app.limits import transport_cap_bytes
from app.models import Principal
from app.schemas import Payload, parse
from app.tasks import cancel_and_wait
from handlers.common import bearer_token, services

log = logging.getLogger(__name__)

# Close code of a session that ended (token expired, logged out): 4000-4999 are private.
SESSION_ENDED = 4001
# How often an idle socket looks at the session cache for a log-out elsewhere.
WATCH_SECONDS = 2.0


class ClientFrame(Payload):
    type: Literal["message"]
    content: str = Field(min_length=1)


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    await ws.send_str(orjson.dumps(frame).decode())


async def _error(ws: web.WebSocketResponse, exc: BaseException) -> None:
    err = error_from_exception(exc)
    await _send(ws, {"type": "error", "code": err.code, "message": err.message})


async def _answer(
    ws: web.WebSocketResponse, ask: AskService, who: Principal, room_id: str, data: str
) -> None:
    try:
        frame = parse(ClientFrame, orjson.loads(data))
    except orjson.JSONDecodeError:
        await _error(ws, invalid("frame: not valid JSON"))
        return
    except AppError as exc:
        await _error(ws, exc)
        return
    async with aclosing(ask.ask(who, room_id, frame.content, kind="ws")) as events:
        async for _, event in events:
            if event.kind == "delta":
                await _send(ws, {"type": "delta", "delta": event.delta})
            elif event.kind == "done" and event.message is not None:
                if event.error is not None:
                    await _error(ws, event.error)
                message = event.message.model_dump(mode="json")
                await _send(ws, {"type": "done", "message": message})


async def ws_chat(request: web.Request) -> web.StreamResponse:
    """Authenticate and check the session before upgrading; then one answer per frame."""
    svc = services(request)
    room_id = request.query.get("session_id")
    if not room_id:
        raise invalid("session_id: required (GET /api/v1/session_id makes one)")
    token = bearer_token(request) or request.query.get("token")
    if not token:
        raise AppError(UNAUTHORIZED, "missing token")
    who = await svc.authenticator.authenticate(token)
    await svc.rooms.session_room(who, room_id)
    # The same hard cap as Socket.IO: a long message gets a payload_too_large frame.
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=transport_cap_bytes(svc.settings.limits))
    await ws.prepare(request)
    watch = asyncio.create_task(_end_with_session(ws, svc.authenticator, who), name="ws-session")
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                # Each frame re-checks the session (cached: no database round trip).
                await svc.authenticator.check(who)
                await _answer(ws, svc.ask, who, room_id, msg.data)
            except Exception as exc:
                err = error_from_exception(exc)
                if err.code == "internal":
                    log.exception("plain websocket answer failed")
                await _error(ws, exc)
                if err.code == UNAUTHORIZED:
                    await ws.close(code=SESSION_ENDED, message=b"session ended")
    finally:
        await cancel_and_wait(watch)
    return ws


async def _end_with_session(
    ws: web.WebSocketResponse, authenticator: Authenticator, who: Principal
) -> None:
    """Close the socket when its token expires or its session is revoked (log-out)."""
    while not ws.closed:
        left = who.expires_at - time.time() if who.expires_at else WATCH_SECONDS
        await asyncio.sleep(max(0.0, min(left, WATCH_SECONDS)))
        if ws.closed:
            return
        expired = bool(who.expires_at) and who.expires_at <= time.time()
        if expired or authenticator.versions.revoked(who):
            message = "token expired" if expired else "session ended; log in again"
            await _error(ws, AppError(UNAUTHORIZED, message))
            await ws.close(code=SESSION_ENDED, message=message.encode())
            return


def setup(app: web.Application) -> None:
    """Register the plain WebSocket route."""
    app.router.add_get("/api/v1/ws/chat", ws_chat)
