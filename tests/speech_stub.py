"""A deterministic speech provider for voice-room tests (like the scripted LLM provider).

`transcribe` answers `transcript` (and records the audio it was given); `synthesize`
yields a 440 Hz tone, 20 ms of PCM16 24 kHz per character, in 100 ms pieces.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator

RATE = 24_000


def tone(seconds: float, freq: float = 440.0, rate: int = RATE) -> bytes:
    """PCM16 mono samples of a sine tone."""
    count = int(seconds * rate)
    return struct.pack(
        f"<{count}h",
        *(int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(count)),
    )


class ScriptedSpeech:
    """Implements app.voice.speech_port.SpeechPort without models."""

    def __init__(self, transcript: str = "what is the weather like", *,
                 can_transcribe: bool = True, delay: float = 0.0) -> None:
        self.transcript = transcript
        self.heard: list[bytes] = []
        self.spoken: list[str] = []
        self.delay = delay
        self._can_transcribe = can_transcribe

    @property
    def can_transcribe(self) -> bool:
        return self._can_transcribe

    @property
    def can_speak(self) -> bool:
        return True

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        assert sample_rate == RATE
        self.heard.append(pcm16)
        return self.transcript

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.spoken.append(text)
        pcm = tone(0.02 * len(text))
        for start in range(0, len(pcm), 4800):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield pcm[start:start + 4800]
