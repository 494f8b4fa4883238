"""The embedded pipeline: speech recognition -> the room's model -> speech synthesis."""

from __future__ import annotations

from app.errors import UNAVAILABLE, AppError
from app.models import Room
from app.voice.source import Answer
from app.voice.speech_port import NO_RECOGNISER, SAMPLE_RATE, SpeechPort
from app.voice.spoken import SpokenAnswer
from app.voice.turn import AudioSink, Turn


class EmbeddedBackend:
    """A `VoiceBackend` without keys: the turn is transcribed once the speaker stops."""

    name = "embedded"
    needs_context = True

    def __init__(self, speech: SpeechPort) -> None:
        self._speech = speech

    def check(self) -> None:
        if not self._speech.can_transcribe:
            raise AppError(UNAVAILABLE, NO_RECOGNISER)

    def model_for(self, room: Room) -> str | None:
        return None  # the room's model, through the normal reply engine

    async def begin(self, turn: Turn, room: Room) -> None:
        return None

    async def append(self, turn: Turn, audio: bytes) -> None:
        return None

    async def transcribe(self, turn: Turn) -> str:
        return (await self._speech.transcribe(bytes(turn.audio), SAMPLE_RATE)).strip()

    def answer(self, turn: Turn, send_audio: AudioSink) -> Answer:
        return SpokenAnswer(self._speech, send_audio)

    async def drop(self, turn: Turn) -> None:
        return None

    async def release_room(self, room_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
