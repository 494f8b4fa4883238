"""The speech interfaces every provider implements, and PCM/WAV helpers.

Audio between Parlour's parts is PCM16 little-endian mono at the provider's
`sample_rate`; `wav_header` + those bytes make a WAV file that can be streamed.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Literal, Protocol, TypeAlias

AudioFormat: TypeAlias = Literal["pcm", "wav", "mp3"]
STREAMING_SIZE = 0xFFFFFFFF  # RIFF/data size of a WAV whose length is not known yet
CONTENT_TYPES: dict[str, str] = {"pcm": "audio/pcm", "wav": "audio/wav", "mp3": "audio/mpeg"}


class SpeechToText(Protocol):
    """Speech recognition. Failures raise AppError (`provider_error`, `invalid_payload`)."""

    name: str  # "provider:model", e.g. "openai:whisper-1", "local:whisper-tiny.en"

    async def transcribe(self, audio: bytes, mime: str, filename: str = "audio") -> str:
        """The words spoken in `audio` (any container the provider reads: wav, mp3, ...)."""
        ...

    async def close(self) -> None: ...


class TextToSpeech(Protocol):
    """A voice. Failures raise AppError (`provider_error`), possibly after some audio."""

    name: str  # "provider:model"
    sample_rate: int  # of the "pcm" and "wav" output
    formats: frozenset[AudioFormat]  # what synthesize_stream can produce

    def synthesize_stream(
        self, text: str, audio_format: AudioFormat = "pcm"
    ) -> AsyncIterator[bytes]:
        """The spoken text as it is produced: raw PCM16 mono, a WAV stream, or MP3."""
        ...

    async def close(self) -> None: ...


def wav_header(sample_rate: int, data_bytes: int = STREAMING_SIZE, channels: int = 1) -> bytes:
    """A 44-byte PCM16 WAV header; the default sizes mean "until the stream ends"."""
    riff = STREAMING_SIZE if data_bytes == STREAMING_SIZE else 36 + data_bytes
    block = channels * 2
    return (
        b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )


async def as_wav(pcm: AsyncIterator[bytes], sample_rate: int) -> AsyncIterator[bytes]:
    """A streamed WAV of a PCM16 mono stream: the header comes with the first audio, so a
    source that fails at once fails before anything is sent."""
    chunks = aiter(pcm)
    first = await anext(chunks, b"")
    yield wav_header(sample_rate) + first
    async for chunk in chunks:
        yield chunk
