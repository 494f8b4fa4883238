"""Voice rooms: floor control and the life of each spoken turn.

A turn is taken with `start` (the floor, shared by every node through the `FloorStore`,
and the reply's admission ticket), fed with `chunk`, and ended with `stop` (answered)
or `cancel` / the speaker's disconnect (dropped). After `stop`, the turn's own task
transcribes the audio, stores the user's message (`input: "voice"`), runs the reply
through the reply engine with the backend's `Answer`, and releases the floor in its
`finally`. The floor is held from `voice_start` until the answer ends: one voice
exchange at a time per room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from app.assistant.engine import AssistantEngine
from app.config_features import VoiceSettings
from app.errors import (
    CONFLICT,
    FORBIDDEN,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    PROVIDER_ERROR,
    AppError,
    error_from_exception,
    invalid,
)
from app.events import Emitter, room_channel
from app.ids import new_id
from app.models import Principal
from app.room_hooks import ReplyOptions
from app.rooms import RoomService, author_of
from app.tasks import cancel_and_wait
from app.voice.source import VoiceReplySource
from app.voice.speech_port import BYTES_PER_SECOND
from app.voice.turn import Turn, VoiceBackend
from storage.control import ControlBus
from storage.voice_floor import FloorStore

log = logging.getLogger(__name__)

VOICE_ROOM = "openai_realtime"
MAX_CHUNK_BYTES = BYTES_PER_SECOND  # at most 1 s of PCM16 mono 24 kHz per chunk
MIN_TURN_BYTES = BYTES_PER_SECOND // 10  # 0.1 s: less is a slip (and the Realtime API's minimum)
LEASE_SECONDS = 30.0  # the floor's lease, renewed while this node works on the turn
RENEW_SECONDS = 5.0


class VoiceService:
    """Every voice command of a room, on the node the speaker is connected to."""

    def __init__(
        self,
        settings: VoiceSettings,
        rooms: RoomService,
        engine: AssistantEngine,
        floor: FloorStore,
        emitter: Emitter,
        answers: VoiceReplySource,
        backend: VoiceBackend,
        control: ControlBus,
        node_id: str,
    ) -> None:
        self._settings = settings
        self._rooms = rooms
        self._engine = engine
        self._floor = floor
        self._emitter = emitter
        self._answers = answers
        self.backend = backend
        self._node_id = node_id
        self._control = control
        self._turns: dict[str, Turn] = {}  # by room id: this node's turns
        self._max_turn_bytes = int(settings.max_turn_seconds * BYTES_PER_SECOND)
        control.subscribe(self._on_command)

    async def _on_command(self, command: dict[str, Any]) -> None:
        # The room's floor was taken on another node: the room's session lives there now.
        if command.get("type") == "voice_floor" and command.get("node_id") != self._node_id:
            await self.backend.release_room(str(command.get("room_id")))

    # -- commands -------------------------------------------------------------------------

    async def start(self, principal: Principal, room_id: str, sid: str) -> Turn:
        """Take the floor: `conflict` while another turn (or its answer) holds it."""
        room = await self._rooms.load(principal, room_id, write=True)
        if room.room_type != VOICE_ROOM:
            raise invalid(f"room_id: not a voice room (room_type {VOICE_ROOM!r} is)")
        current = self._turns.get(room_id)
        if current is not None and current.sid == sid and current.phase == "listening":
            return current  # a retried voice_start
        self.backend.check()
        options = ReplyOptions(kind="voice", always=True, model=self.backend.model_for(room))
        ticket = await self._engine.admit_reply(room, principal, "", options)
        if ticket is None:  # always=True: never None; typed for the protocol
            raise AppError(INTERNAL, "the voice turn was not admitted")
        turn = Turn(new_id(), room_id, principal, sid, ticket)
        try:
            holder = await self._floor.take(room_id, {
                "turn_id": turn.turn_id, "user_id": principal.user_id, "name": principal.name,
                "sid": sid, "node_id": self._node_id, "phase": "listening",
            }, LEASE_SECONDS)
            if holder is not None:
                raise AppError(CONFLICT, _busy(holder, principal))
        except BaseException:
            ticket.release()
            raise
        self._turns[room_id] = turn
        turn.keeper = asyncio.create_task(self._keep(turn), name=f"voice-floor-{room_id}")
        try:
            await self._control.publish(
                {"type": "voice_floor", "room_id": room_id, "node_id": self._node_id}
            )
            await self.backend.begin(turn, room)
            await self._emitter.voice_state(room_id, author_of(principal), "listening")
        except BaseException:
            turn.ticket.release()
            await self._end(turn)
            raise
        return turn

    async def chunk(self, principal: Principal, room_id: str, sid: str, audio: bytes) -> int:
        """Add audio to the caller's turn; the turn's length so far in bytes."""
        if len(audio) > MAX_CHUNK_BYTES:
            raise AppError(PAYLOAD_TOO_LARGE, f"audio: {len(audio)} bytes, at most "
                           f"{MAX_CHUNK_BYTES} (1 s of PCM16 mono 24 kHz) per chunk")
        if not audio or len(audio) % 2:
            raise invalid("audio: PCM16 needs a whole, non-zero number of 2-byte samples")
        turn = self._own_turn(room_id, sid)
        if len(turn.audio) + len(audio) > self._max_turn_bytes:
            raise AppError(PAYLOAD_TOO_LARGE, f"the turn is longer than voice.max_turn_seconds "
                           f"({self._settings.max_turn_seconds:g} s); voice_stop sends what "
                           "was said")
        turn.audio += audio
        try:
            await self.backend.append(turn, audio)
        except AppError as exc:
            if exc.code == PROVIDER_ERROR:  # the session is gone: so is the turn
                await self._drop(turn)
                with contextlib.suppress(Exception):
                    await self._emitter.error(room_channel(room_id), {
                        **exc.as_dict(), "event": "voice_chunk", "room_id": room_id})
            raise
        return len(turn.audio)

    async def stop(self, principal: Principal, room_id: str, sid: str) -> Turn:
        """End the caller's turn: the assistant answers it."""
        turn = self._own_turn(room_id, sid)
        if len(turn.audio) < MIN_TURN_BYTES:
            await self._drop(turn)
            raise invalid("audio: the turn is shorter than 0.1 s; hold the button while "
                          "you speak (send voice_chunk before voice_stop)")
        turn.phase = "answering"
        await self._phase(turn, "thinking")
        await self._emitter.voice_state(room_id, None, "thinking")
        turn.task = asyncio.create_task(self._answer(turn), name=f"voice-turn-{room_id}")
        return turn

    async def cancel(self, principal: Principal, room_id: str, sid: str) -> None:
        """Drop the caller's turn: while listening its audio goes; after, its answer stops."""
        turn = self._turns.get(room_id)
        if turn is None or turn.principal.user_id != principal.user_id:
            raise AppError(FORBIDDEN, "you do not hold the floor in this room")
        if turn.phase == "listening":
            if turn.sid != sid:
                raise AppError(FORBIDDEN, "you do not hold the floor in this room")
            await self._drop(turn)
        elif turn.task is not None:
            turn.task.cancel()

    async def disconnected(self, sid: str) -> None:
        """The socket went away: a turn it was speaking is dropped (answers carry on)."""
        for turn in [t for t in self._turns.values() if t.sid == sid]:
            if turn.phase == "listening":
                try:
                    await self._drop(turn)
                except Exception:
                    log.warning("dropping the turn of %s failed", sid, exc_info=True)

    async def close(self) -> None:
        """Drop every turn (shutdown), then close the backend's sessions."""
        for turn in list(self._turns.values()):
            if turn.task is not None:
                turn.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await turn.task
            else:
                await self._drop(turn)
        await self.backend.close()

    # -- the turn's life ------------------------------------------------------------------

    def _own_turn(self, room_id: str, sid: str) -> Turn:
        turn = self._turns.get(room_id)
        if turn is None or turn.sid != sid or turn.phase != "listening":
            raise AppError(FORBIDDEN, "you do not hold the floor in this room (voice_start)")
        return turn

    async def _answer(self, turn: Turn) -> None:
        """The task of a stopped turn: transcript, user message, the reply, then the end."""
        handed = False
        message_id: str | None = None
        try:
            transcript = await self.backend.transcribe(turn)
            if not transcript:
                raise invalid("audio: no words were heard in this turn")
            await self._emitter.voice_transcript(
                turn.room_id, turn.principal.user_id, transcript, True
            )
            message = await self._rooms.post_voice_turn(turn.principal, turn.room_id, transcript)
            message_id = message.message_id
            room = await self._rooms.load(turn.principal, turn.room_id)
            self._answers.register(message_id, self.backend.answer(
                turn, lambda mid, pcm: self._send_audio(turn, mid, pcm)
            ))
            options = ReplyOptions(kind="voice", always=True, model=self.backend.model_for(room),
                                   context=self.backend.needs_context)
            reply = self._engine.run_reply(turn.ticket, room, message, options)
            handed = True
            try:
                await reply.ended()
            except asyncio.CancelledError:
                reply.cancel("stop")  # voice_cancel after voice_stop, or shutdown
                await reply.ended()
                raise
        except asyncio.CancelledError:
            # Our own end (voice_cancel, shutdown): the task ends right after the finally.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception as exc:
            err = error_from_exception(exc)
            if err.code == INTERNAL:
                log.exception("voice turn in room %s failed", turn.room_id)
            with contextlib.suppress(Exception):
                await self._emitter.error(room_channel(turn.room_id), {
                    **err.as_dict(), "event": "voice_stop", "room_id": turn.room_id,
                })
        finally:
            if message_id is not None:
                self._answers.forget(message_id)
            if not handed:
                turn.ticket.release()
            await self._end(turn)

    async def _send_audio(self, turn: Turn, message_id: str, pcm: bytes) -> None:
        """One piece of the spoken answer to every member (the first says `speaking`)."""
        if not turn.speaking:
            turn.speaking = True
            await self._phase(turn, "speaking")
            await self._emitter.voice_state(turn.room_id, None, "speaking")
        turn.audio_seq += 1
        await self._emitter.assistant_audio(turn.room_id, message_id, turn.audio_seq, pcm)

    async def _phase(self, turn: Turn, phase: str) -> None:
        """Record the turn's phase with the floor (late joiners read it); best effort."""
        try:
            await self._floor.set_phase(turn.room_id, turn.turn_id, phase)
        except Exception:
            log.warning("recording the voice phase of room %s failed", turn.room_id,
                        exc_info=True)

    async def _keep(self, turn: Turn) -> None:
        """Renew the floor's lease; drop a turn whose speaker never said voice_stop."""
        limit = self._settings.max_turn_seconds + self._settings.turn_grace_seconds
        while True:
            left = limit - (time.monotonic() - turn.started_at)
            wait = min(RENEW_SECONDS, left) if turn.phase == "listening" else RENEW_SECONDS
            await asyncio.sleep(max(wait, 0.05))
            if turn.phase == "listening" and time.monotonic() - turn.started_at >= limit:
                log.info("voice turn in room %s dropped after %.0f s", turn.room_id, limit)
                # Not awaited here: ending the turn cancels this very task.
                asyncio.get_running_loop().call_soon(self._drop_later, turn)
                return
            try:
                if not await self._floor.extend(turn.room_id, turn.turn_id, LEASE_SECONDS):
                    log.warning("voice turn in room %s lost its floor lease", turn.room_id)
            except Exception:
                log.warning("renewing the floor of room %s failed", turn.room_id, exc_info=True)

    def _drop_later(self, turn: Turn) -> None:
        task = asyncio.ensure_future(self._drop(turn))
        turn.task = task  # referenced (and awaited by close) until it ends

    async def _drop(self, turn: Turn) -> None:
        """A turn that will not be answered: its audio goes, the floor is free."""
        if turn.phase == "ended":
            return
        try:
            await self.backend.drop(turn)
        finally:
            turn.ticket.release()
            await self._end(turn)

    async def _end(self, turn: Turn) -> None:
        """Release the floor and tell the room (once)."""
        if turn.phase == "ended":
            return
        turn.phase = "ended"
        turn.audio = bytearray()
        if self._turns.get(turn.room_id) is turn:
            del self._turns[turn.room_id]
        if turn.keeper is not None and turn.keeper is not asyncio.current_task():
            await cancel_and_wait(turn.keeper)
        try:
            await self._floor.release(turn.room_id, turn.turn_id)
        except Exception:
            log.warning("releasing the floor of room %s failed (its lease runs out)",
                        turn.room_id, exc_info=True)
        with contextlib.suppress(Exception):
            await self._emitter.voice_state(turn.room_id, None, "idle")


def _busy(holder: dict[str, str], principal: Principal) -> str:
    if holder.get("user_id") == principal.user_id:
        return "you already hold the floor in this room (another tab or a turn being answered)"
    name = holder.get("name") or "another member"
    return f"{name} holds the floor; wait for the answer to end"

