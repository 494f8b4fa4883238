"""PCM16 mono to an MP3 stream with PyAV's LAME encoder (in the wheel; no ffmpeg binary)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

BIT_RATE = 64_000


class Mp3Encoder:
    """Feed PCM16 mono chunks, get MP3 frames back (sync: call it from a thread)."""

    def __init__(self, sample_rate: int) -> None:
        import av

        self._av: Any = av
        self._rate = sample_rate
        self._codec: Any = av.CodecContext.create("libmp3lame", "w")
        self._codec.sample_rate = sample_rate
        self._codec.layout = "mono"
        self._codec.format = "s16p"
        self._codec.bit_rate = BIT_RATE
        self._codec.open()
        self._fifo: Any = av.AudioFifo()

    def encode(self, pcm: bytes, final: bool = False) -> bytes:
        """The MP3 bytes ready after `pcm` (everything left when `final`)."""
        import numpy as np

        out = bytearray()
        if len(pcm) >= 2:
            samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).reshape(1, -1)
            frame = self._av.AudioFrame.from_ndarray(samples, format="s16p", layout="mono")
            frame.sample_rate = self._rate
            self._fifo.write(frame)
        while (chunk := self._fifo.read(self._codec.frame_size)) is not None:
            out += b"".join(bytes(p) for p in self._codec.encode(chunk))
        if final:
            rest = self._fifo.read()
            if rest is not None:
                out += b"".join(bytes(p) for p in self._codec.encode(rest))
            out += b"".join(bytes(p) for p in self._codec.encode(None))
        return bytes(out)


async def as_mp3(pcm: AsyncIterator[bytes], sample_rate: int) -> AsyncIterator[bytes]:
    """An MP3 stream of a PCM16 mono stream, encoded off the event loop as it comes."""
    encoder = await asyncio.to_thread(Mp3Encoder, sample_rate)
    async for chunk in pcm:
        data = await asyncio.to_thread(encoder.encode, chunk)
        if data:
            yield data
    tail = await asyncio.to_thread(encoder.encode, b"", True)
    if tail:
        yield tail
