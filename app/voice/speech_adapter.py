"""The speech providers (app/speech: a recogniser and a voice) as the voice rooms' port.

The recogniser reads audio files, so a turn's PCM is given to it as a WAV; the voice
speaks PCM16 at its own rate (Piper: 22,050 Hz), resampled here to the rooms' 24 kHz.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import numpy as np

from app.errors import UNAVAILABLE, AppError
from app.voice.speech_port import NO_RECOGNISER, SAMPLE_RATE


class Recogniser(Protocol):
    """app.speech.base.SpeechToText, as far as voice rooms use it."""

    async def transcribe(self, audio: bytes, mime: str, filename: str = "audio") -> str: ...


class Voice(Protocol):
    """app.speech.base.TextToSpeech, as far as voice rooms use it."""

    sample_rate: int

    def synthesize_stream(
        self, text: str, audio_format: Literal["pcm", "wav", "mp3"] = "pcm"
    ) -> AsyncIterator[bytes]: ...


def wav_of(pcm16: bytes, sample_rate: int) -> bytes:
    """A PCM16 mono WAV file of `pcm16`."""
    return (
        b"RIFF" + struct.pack("<I", 36 + len(pcm16)) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", len(pcm16)) + pcm16
    )


def resample(pcm16: bytes, rate_from: int, rate_to: int = SAMPLE_RATE) -> bytes:
    """PCM16 mono from one rate to another (linear interpolation: speech, not music)."""
    samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2")
    if rate_from == rate_to or samples.size == 0:
        return bytes(samples.tobytes())
    count = max(1, round(samples.size * rate_to / rate_from))
    positions = np.arange(count) * (rate_from / rate_to)
    out = np.interp(positions, np.arange(samples.size), samples.astype(np.float32))
    result: bytes = np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
    return result


class SpeechAdapter:
    """A `SpeechPort` over the speech providers (either may be missing)."""

    def __init__(self, recogniser: Recogniser | None, voice: Voice | None) -> None:
        self._recogniser = recogniser
        self._voice = voice

    @property
    def can_transcribe(self) -> bool:
        return self._recogniser is not None

    @property
    def can_speak(self) -> bool:
        return self._voice is not None

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        if self._recogniser is None:
            raise AppError(UNAVAILABLE, NO_RECOGNISER)
        return await self._recogniser.transcribe(wav_of(pcm16, sample_rate), "audio/wav",
                                                 "turn.wav")

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if self._voice is None:
            return
        # One sentence at a time, resampled whole (no seams inside it). The rate is read
        # once the voice has spoken: a voice learns its own rate when its model loads.
        pcm = b"".join([chunk async for chunk in self._voice.synthesize_stream(text, "pcm")])
        rate = self._voice.sample_rate
        yield pcm if rate == SAMPLE_RATE else await asyncio.to_thread(resample, pcm, rate)
