"""One spoken turn: who holds the floor, the audio so far, and the task answering it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from app.assistant.admission import Ticket
from app.assistant.source import ReplySource
from app.models import Principal, Room
from app.voice.source import Answer

Phase = Literal["listening", "answering", "ended"]
AudioSink = Callable[[str, bytes], Awaitable[None]]  # (message_id, pcm16) to the room


@dataclass(eq=False)
class Turn:
    """A turn of a voice room on this node, from voice_start until its answer ends."""

    turn_id: str
    room_id: str
    principal: Principal
    sid: str
    ticket: Ticket
    phase: Phase = "listening"
    audio: bytearray = field(default_factory=bytearray)
    started_at: float = field(default_factory=time.monotonic)
    audio_seq: int = 0
    speaking: bool = False
    task: asyncio.Task[None] | None = None  # the answer (after voice_stop)
    keeper: asyncio.Task[None] | None = None  # renews the floor, drops a forgotten turn


class VoiceBackend(Protocol):
    """How a room's spoken turns are heard and answered (Realtime bridge, or embedded)."""

    name: str
    # Whether the reply's prompt (history, sources) is built: the Realtime session keeps
    # its own conversation; the embedded pipeline asks the room's model like any reply.
    needs_context: bool

    def check(self) -> None:
        """Raise `unavailable` (with what to do) when voice turns cannot be answered."""

    def model_for(self, room: Room) -> str | None:
        """The model the turn's reply is recorded with (None: the room's)."""

    async def begin(self, turn: Turn, room: Room) -> None:
        """The speaker took the floor (a Realtime session is opened here)."""

    async def append(self, turn: Turn, audio: bytes) -> None:
        """A chunk of the speaker's audio (already added to `turn.audio`)."""

    async def transcribe(self, turn: Turn) -> str:
        """After voice_stop: the speaker's words (deltas may go to the room meanwhile)."""

    def answer(self, turn: Turn, send_audio: AudioSink) -> Answer:
        """The `Answer` that produces the turn's reply."""

    async def drop(self, turn: Turn) -> None:
        """The turn was cancelled: forget its audio."""

    async def release_room(self, room_id: str) -> None:
        """Another node took the room's floor: forget the room here (its session moves)."""

    async def close(self) -> None:
        """Close sessions (shutdown)."""


__all__ = ["AudioSink", "Phase", "ReplySource", "Turn", "VoiceBackend"]
