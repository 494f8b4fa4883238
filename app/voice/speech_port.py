"""What voice rooms need of speech providers: recognise a turn, speak a sentence.

A narrow port so the embedded pipeline does not depend on how speech is provided
(app/speech adapts to it). Audio is PCM16 little-endian mono; synthesis yields 24 kHz.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from app.errors import UNAVAILABLE, AppError

SAMPLE_RATE = 24_000  # Hz, PCM16 mono: 48,000 bytes a second
BYTES_PER_SECOND = SAMPLE_RATE * 2


class SpeechPort(Protocol):
    """Speech recognition and synthesis for the embedded voice pipeline."""

    @property
    def can_transcribe(self) -> bool:
        """Whether `transcribe` works here."""
        ...

    @property
    def can_speak(self) -> bool:
        """Whether `synthesize` works here."""
        ...

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        """The words in the audio ("" when none were heard)."""
        ...

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """The text spoken, as PCM16 mono 24 kHz pieces."""
        ...


NO_RECOGNISER = (
    "no speech recogniser is available on this server: set OPENAI_API_KEY for the OpenAI "
    "Realtime bridge, or install an embedded recogniser (see README, Voice rooms)"
)


class NoSpeech:
    """A node without speech providers: voice turns are refused with `unavailable`."""

    @property
    def can_transcribe(self) -> bool:
        return False

    @property
    def can_speak(self) -> bool:
        return False

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        raise AppError(UNAVAILABLE, NO_RECOGNISER)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        raise AppError(UNAVAILABLE, "no speech synthesis is available on this server")
        yield b""  # pragma: no cover - makes this an async generator
