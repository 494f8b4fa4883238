"""Speech for users: transcriptions and spoken answers, admitted and counted like replies.

Each call takes a running slot of the admission gate (`limits.max_concurrent_replies`,
the daily token budget), so a speech route cannot be used to skip the limits.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from app.assistant.admission import AdmissionGate
from app.config_features import AudioSettings
from app.errors import INVALID_PAYLOAD, AppError, error_from_exception
from app.metrics import Metrics
from app.models import Principal
from app.speech.base import AudioFormat, TextToSpeech
from app.speech.factory import Speech


class SpeechService:
    """Transcribe audio and speak text for a user."""

    def __init__(
        self, settings: AudioSettings, speech: Speech, gate: AdmissionGate, metrics: Metrics
    ) -> None:
        self._settings = settings
        self.speech = speech
        self._gate = gate
        self._metrics = metrics

    async def transcribe(
        self, principal: Principal, audio: bytes, mime: str, filename: str
    ) -> str:
        """The words spoken in `audio`."""
        recogniser = self.speech.recogniser()
        if not audio:
            raise AppError(INVALID_PAYLOAD, f"{filename}: the file is empty")
        async with self._gate.admitted(principal.user_id, kind="transcription"):
            try:
                text = await recogniser.transcribe(audio, mime, filename)
            except Exception as exc:
                self._count("transcribe", exc)
                raise
        self._count("transcribe", None)
        return text

    def voice(self, requested: str | None) -> tuple[TextToSpeech, AudioFormat]:
        """The voice and the format to answer in (`mp3` with OpenAI, `wav` embedded)."""
        voice = self.speech.voice()
        if requested is None:  # OpenAI's default is mp3; the embedded voice's, wav
            return voice, "mp3" if voice.name.startswith("openai:") else "wav"
        if requested not in ("wav", "mp3") or requested not in voice.formats:
            formats = ", ".join(sorted(f for f in voice.formats if f != "pcm"))
            raise AppError(INVALID_PAYLOAD, f"format: {voice.name} answers in {formats}")
        fmt: AudioFormat = "mp3" if requested == "mp3" else "wav"
        return voice, fmt

    async def speak(
        self, principal: Principal, voice: TextToSpeech, text: str, fmt: AudioFormat
    ) -> AsyncGenerator[bytes, None]:
        """The text spoken (at most audio.max_speech_chars of it), streamed."""
        async with self._gate.admitted(principal.user_id, kind="speech"):
            try:
                async for chunk in voice.synthesize_stream(
                    text[: self._settings.max_speech_chars], fmt
                ):
                    yield chunk
            except Exception as exc:
                self._count("speak", exc)
                raise
        self._count("speak", None)

    def _count(self, op: str, exc: BaseException | None) -> None:
        outcome = "ok" if exc is None else error_from_exception(exc).code
        self._metrics.speech.labels(op=op, outcome=outcome).inc()
