"""The python-socketio server: orjson, ack tracking, and the Transport the services use."""

from __future__ import annotations

import contextvars
from typing import Any

import orjson
import socketio

from app.events import user_channel

REALTIME = "/assistant/realtime"
DEFAULT = "/"
NAMESPACES = (REALTIME, DEFAULT)

# Whether the event being handled asked for an ack (set per event task).
ack_requested: contextvars.ContextVar[bool] = contextvars.ContextVar("ack_requested", default=True)


class OrjsonModule:
    """The json interface python-socketio expects, backed by orjson."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return orjson.loads(data)


class ParlourServer(socketio.AsyncServer):  # type: ignore[misc]
    """AsyncServer that lets handlers know whether the client asked for an ack.

    python-socketio drops a handler's return value when no ack id was sent; our
    namespaces then emit an `error` event instead, so no failure goes unanswered.
    """

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        ack_requested.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


class SocketTransport:
    """The services' Transport, on top of the Socket.IO server and its client manager."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def emit(
        self,
        event: str,
        data: dict[str, Any],
        *,
        to: str,
        skip_sid: str | None = None,
        all_namespaces: bool = False,
    ) -> None:
        namespaces = NAMESPACES if all_namespaces else (REALTIME,)
        for namespace in namespaces:
            await self._sio.emit(event, data, to=to, skip_sid=skip_sid, namespace=namespace)

    async def enter_room(self, sid: str, channel: str) -> None:
        await self._sio.enter_room(sid, channel, namespace=REALTIME)

    async def leave_room(self, sid: str, channel: str) -> None:
        await self._sio.leave_room(sid, channel, namespace=REALTIME)

    async def leave_user_sockets(self, user_id: str, channel: str) -> None:
        manager = self._sio.manager
        for sid, _ in list(manager.get_participants(REALTIME, user_channel(user_id))):
            await self._sio.leave_room(sid, channel, namespace=REALTIME)
