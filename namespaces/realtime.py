"""`/assistant/realtime`: rooms, messages, presence (transport only)."""

from __future__ import annotations

import logging
from typing import Any

from app.auth import Authenticator
from app.events import Emitter
from app.metrics import Metrics
from app.models import Principal
from app.rooms import RoomService
from app.schemas import (
    CreateRoom,
    Invite,
    JoinRoom,
    Regenerate,
    RemoveMember,
    RoomRef,
    SendMessage,
    StopGeneration,
    Typing,
    UpdateMember,
    UpdateRoom,
    VoiceChunk,
    parse,
)
from app.voice.service import VoiceService
from namespaces.base import BaseNamespace
from namespaces.connections import ConnectionRegistry

log = logging.getLogger(__name__)


class RealtimeNamespace(BaseNamespace):
    """Each handler: validate, call one RoomService method, shape the ack."""

    def __init__(
        self,
        namespace: str,
        authenticator: Authenticator,
        connections: ConnectionRegistry,
        emitter: Emitter,
        metrics: Metrics,
        rooms: RoomService,
        voice: VoiceService,
    ) -> None:
        super().__init__(namespace, authenticator, connections, emitter, metrics)
        self._rooms = rooms
        self._voice = voice
        for event, handler in {
            "create_room": self._create_room,
            "join_room": self._join_room,
            "leave_room": self._leave_room,
            "send_message": self._send_message,
            "typing": self._typing,
            "update_room": self._update_room,
            "invite": self._invite,
            "remove_member": self._remove_member,
            "update_member": self._update_member,
            "stop_generation": self._stop_generation,
            "regenerate": self._regenerate,
            "voice_start": self._voice_start,
            "voice_chunk": self._voice_chunk,
            "voice_stop": self._voice_stop,
            "voice_cancel": self._voice_cancel,
        }.items():
            self.handle(event, handler)

    def _track(self, sid: str, room_id: str, joined: bool) -> None:
        conn = self._connections.get(sid)
        if conn is not None:
            (conn.rooms.add if joined else conn.rooms.discard)(room_id)

    async def _create_room(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(CreateRoom, payload)
        self._connections.check_room_capacity(sid, "")
        room = await self._rooms.create_room(who, req, sid)
        self._track(sid, room.room_id, True)
        return {"room": room.model_dump(mode="json")}

    async def _join_room(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(JoinRoom, payload)
        self._connections.check_room_capacity(sid, req.room_id)
        result = await self._rooms.join_room(who, req.room_id, sid, req.since_seq)
        self._track(sid, req.room_id, True)
        return result

    async def _leave_room(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(RoomRef, payload)
        await self._rooms.leave_room(who, req.room_id, sid)
        self._track(sid, req.room_id, False)
        return {}

    async def _send_message(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        message = await self._rooms.send_message(who, parse(SendMessage, payload))
        return {"message": message.model_dump(mode="json")}

    async def _typing(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(Typing, payload)
        await self._rooms.typing(who, req.room_id, sid, req.is_typing)
        return {}

    async def _update_room(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(UpdateRoom, payload)
        room = await self._rooms.update_room(who, req.room_id, req)
        return {"room": room.model_dump(mode="json")}

    async def _invite(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        room = await self._rooms.invite(who, parse(Invite, payload))
        return {"room": room.model_dump(mode="json")}

    async def _remove_member(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(RemoveMember, payload)
        room = await self._rooms.remove_member(who, req.room_id, req.user_id)
        return {"room": room.model_dump(mode="json")}

    async def _update_member(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(UpdateMember, payload)
        room = await self._rooms.update_member(who, req.room_id, req.user_id, req.role)
        return {"room": room.model_dump(mode="json")}

    async def _stop_generation(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(StopGeneration, payload)
        message_id = await self._rooms.stop_generation(who, req.room_id, req.message_id)
        return {"message_id": message_id}

    async def _regenerate(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(Regenerate, payload)
        await self._rooms.regenerate(who, req.room_id, req.message_id)
        return {}

    async def _voice_start(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        turn = await self._voice.start(who, parse(RoomRef, payload).room_id, sid)
        return {"turn_id": turn.turn_id}

    async def _voice_chunk(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        req = parse(VoiceChunk, payload)
        received = await self._voice.chunk(who, req.room_id, sid, req.audio)
        return {"bytes": received}

    async def _voice_stop(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        turn = await self._voice.stop(who, parse(RoomRef, payload).room_id, sid)
        return {"turn_id": turn.turn_id}

    async def _voice_cancel(self, sid: str, who: Principal, payload: Any) -> dict[str, Any]:
        await self._voice.cancel(who, parse(RoomRef, payload).room_id, sid)
        return {}

    async def disconnected(self, sid: str, principal: Principal, rooms: set[str]) -> None:
        try:
            await self._voice.disconnected(sid)
        except Exception:
            log.warning("releasing the voice floor of sid %s failed", sid, exc_info=True)
        # One failing room (Redis down, a deleted room) must not leave the others behind.
        for room_id in rooms:
            try:
                await self._rooms.leave_room(principal, room_id, sid)
            except Exception:
                log.warning("leaving room %s after sid %s disconnected failed", room_id, sid,
                            exc_info=True)
