"""Which recogniser and voice this process uses, from `[audio]` and the environment.

An empty `audio.stt_model` / `audio.tts_model` picks OpenAI when OPENAI_API_KEY is set,
else the embedded one when its packages are installed, else none (routes that need it
answer `unavailable` saying how to configure one). A configured model is used as
configured: never silently replaced by another.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from app.config import LLMSettings
from app.config_features import AudioSettings
from app.errors import UNAVAILABLE, AppError
from app.speech.base import SpeechToText, TextToSpeech
from app.speech.openai_audio import OpenAITranscriber, OpenAIVoice
from app.speech.piper_voice import PiperVoice, piper_installed
from app.speech.whisper_local import LocalWhisper, whisper_installed

log = logging.getLogger(__name__)

OPENAI_STT = "openai:whisper-1"
OPENAI_TTS = "openai:gpt-4o-mini-tts"
LOCAL_STT = "local:whisper-tiny.en"
LOCAL_TTS = "local:piper"
NO_STT = ("no speech recognition is configured: set OPENAI_API_KEY (or audio.stt_model), "
          "or run make install for the embedded recogniser")
NO_TTS = ("no voice is configured: set OPENAI_API_KEY (or audio.tts_model), "
          "or run make install for the embedded voice")


@dataclass
class Speech:
    """The recogniser and the voice (either may be missing)."""

    stt: SpeechToText | None
    tts: TextToSpeech | None

    def recogniser(self) -> SpeechToText:
        """The recogniser, or `unavailable` saying how to configure one."""
        if self.stt is None:
            raise AppError(UNAVAILABLE, NO_STT)
        return self.stt

    def voice(self) -> TextToSpeech:
        """The voice, or `unavailable` saying how to configure one."""
        if self.tts is None:
            raise AppError(UNAVAILABLE, NO_TTS)
        return self.tts

    async def close(self) -> None:
        for part in (self.stt, self.tts):
            if part is not None:
                try:
                    await part.close()
                except Exception:
                    log.warning("closing %s failed", part.name, exc_info=True)


def _split(model_id: str, setting: str) -> tuple[str, str]:
    provider, sep, model = model_id.partition(":")
    if not sep or not model or provider not in ("openai", "local"):
        raise ValueError(f"audio.{setting}: expected 'openai:<model>' or 'local:<model>', "
                         f"got {model_id!r}")
    return provider, model


def build_speech(audio: AudioSettings, llm: LLMSettings) -> Speech:
    """The configured recogniser and voice (ValueError for a bad setting)."""
    key = os.environ.get("OPENAI_API_KEY", "")
    timeout = audio.request_timeout_seconds
    stt_id = audio.stt_model or (OPENAI_STT if key else LOCAL_STT if whisper_installed() else "")
    tts_id = audio.tts_model or (OPENAI_TTS if key else LOCAL_TTS if piper_installed() else "")
    stt: SpeechToText | None = None
    tts: TextToSpeech | None = None
    if stt_id:
        provider, model = _split(stt_id, "stt_model")
        if provider == "openai":
            if not key:
                raise ValueError(f"audio.stt_model={stt_id} needs OPENAI_API_KEY")
            stt = OpenAITranscriber(model, llm.openai_base_url, key, timeout)
        else:
            stt = LocalWhisper()
    if tts_id:
        provider, model = _split(tts_id, "tts_model")
        if provider == "openai":
            if not key:
                raise ValueError(f"audio.tts_model={tts_id} needs OPENAI_API_KEY")
            tts = OpenAIVoice(model, audio.tts_voice, llm.openai_base_url, key, timeout)
        else:
            tts = PiperVoice(audio.tts_voice)
    log.info("speech: recognition %s, voice %s", stt.name if stt else "none",
             tts.name if tts else "none")
    return Speech(stt, tts)
