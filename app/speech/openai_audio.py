"""OpenAI's audio endpoints (`/v1/audio/transcriptions`, `/v1/audio/speech`) via the SDK.

Reached at `llm.openai_base_url`, so any server with the same API works too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import openai

from app.errors import INVALID_PAYLOAD, PROVIDER_ERROR, AppError
from app.speech.base import AudioFormat, as_wav

log = logging.getLogger(__name__)

OPENAI_PCM_RATE = 24_000  # OpenAI's `pcm` output: 24 kHz 16-bit mono
READ_CHUNK = 8192


def _client(base_url: str | None, api_key: str, timeout: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=1)


def _failure(name: str, exc: Exception) -> AppError:
    message = exc.message if isinstance(exc, openai.APIError) else str(exc)
    log.warning("speech provider %s failed: %s", name, message or type(exc).__name__)
    if isinstance(exc, openai.BadRequestError):
        return AppError(INVALID_PAYLOAD, f"{name}: {message}")
    return AppError(PROVIDER_ERROR, f"{name}: {message or type(exc).__name__}")


class OpenAITranscriber:
    """Speech to text with `whisper-1`, `gpt-4o-transcribe` or a compatible model."""

    def __init__(self, model: str, base_url: str | None, api_key: str, timeout: float) -> None:
        self.name = f"openai:{model}"
        self._model = model
        self._client = _client(base_url, api_key, timeout)

    async def transcribe(self, audio: bytes, mime: str, filename: str = "audio") -> str:
        """The transcript of `audio` (the file is sent as is, with its type)."""
        try:
            result = await self._client.audio.transcriptions.create(
                model=self._model, file=(filename, audio, mime), response_format="json",
            )
        except Exception as exc:  # the SDK and its HTTP client raise many types
            raise _failure(self.name, exc) from exc
        return str(getattr(result, "text", "") or "").strip()

    async def close(self) -> None:
        await self._client.close()


class OpenAIVoice:
    """Text to speech with `gpt-4o-mini-tts`, `tts-1` or a compatible model, streamed."""

    sample_rate = OPENAI_PCM_RATE
    formats: frozenset[AudioFormat] = frozenset({"pcm", "wav", "mp3"})

    def __init__(
        self, model: str, voice: str, base_url: str | None, api_key: str, timeout: float
    ) -> None:
        self.name = f"openai:{model}"
        self._model = model
        self._voice = voice or "alloy"
        self._client = _client(base_url, api_key, timeout)

    async def synthesize_stream(
        self, text: str, audio_format: AudioFormat = "pcm"
    ) -> AsyncGenerator[bytes, None]:
        """The speech as the API sends it; WAV is built on PCM (streamable, known rate)."""
        if audio_format == "wav":
            async for chunk in as_wav(self._stream(text, "pcm"), self.sample_rate):
                yield chunk
            return
        async for chunk in self._stream(text, audio_format):
            yield chunk

    async def _stream(self, text: str, response_format: str) -> AsyncGenerator[bytes, None]:
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=self._model, voice=self._voice, input=text,
                response_format=response_format,  # type: ignore[arg-type]
            ) as response:
                async for chunk in response.iter_bytes(READ_CHUNK):
                    yield chunk
        except Exception as exc:  # the SDK and its HTTP client raise many types
            raise _failure(self.name, exc) from exc

    async def close(self) -> None:
        await self._client.close()
