"""The embedded speech defaults, timed: Piper speaking a sentence, Whisper tiny.en hearing it.

    .venv/bin/python -m bench.speech

Prints the audio's length, the time to the first spoken sentence and to all of it, the
recognition time, and what was heard (a round trip: the words should come back).
"""

from __future__ import annotations

import asyncio
import time

from app.speech.base import wav_header
from app.speech.piper_voice import PiperVoice
from app.speech.whisper_local import LocalWhisper

TEXT = "The quick brown fox jumps over the lazy dog. What is the capital of France?"


async def main() -> None:
    voice, ear = PiperVoice(), LocalWhisper()
    warm = b"".join([c async for c in voice.synthesize_stream("warm up", "pcm")])
    await ear.transcribe(wav_header(voice.sample_rate, len(warm)) + warm, "audio/wav")
    start = time.perf_counter()
    first: float | None = None
    chunks: list[bytes] = []
    async for chunk in voice.synthesize_stream(TEXT, "pcm"):
        if first is None:
            first = time.perf_counter() - start
        chunks.append(chunk)
    spoken = time.perf_counter() - start
    pcm = b"".join(chunks)
    seconds = len(pcm) / 2 / voice.sample_rate
    start = time.perf_counter()
    heard = await ear.transcribe(wav_header(voice.sample_rate, len(pcm)) + pcm, "audio/wav")
    recognised = time.perf_counter() - start
    print(f"audio {seconds:.2f} s | TTS first sentence {first or 0:.2f} s, all {spoken:.2f} s"
          f" | STT {recognised:.2f} s | heard: {heard}")


if __name__ == "__main__":
    asyncio.run(main())
