"""Plain WebSocket `/api/v1/ws/chat?session_id=` for clients without Socket.IO."""

from __future__ import annotations

import logging
from contextlib import aclosing
from typing import Any, Literal

import orjson
from aiohttp import WSMsgType, web
from pydantic import Field

from app.api_keys import verify_token
from app.assistant.ask import AskService
from app.errors import UNAUTHORIZED, AppError, error_from_exception, invalid
from app.limits import transport_cap_bytes
from app.models import Principal
from app.schemas import Payload, parse
from handlers.common import bearer_token, services

log = logging.getLogger(__name__)


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
    who = await verify_token(token, svc.issuer, svc.api_keys)
    await svc.rooms.load(who, room_id, write=True)
    # The same hard cap as Socket.IO: a long message gets a payload_too_large frame.
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=transport_cap_bytes(svc.settings.limits))
    await ws.prepare(request)
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            await _answer(ws, svc.ask, who, room_id, msg.data)
        except Exception as exc:
            if error_from_exception(exc).code == "internal":
                log.exception("plain websocket answer failed")
            await _error(ws, exc)
    return ws


def setup(app: web.Application) -> None:
    """Register the plain WebSocket route."""
    app.router.add_get("/api/v1/ws/chat", ws_chat)
