"""Which backend answers voice turns: the OpenAI Realtime bridge, or the embedded pipeline."""

from __future__ import annotations

import os

from app.config import Settings
from app.events import Emitter
from app.voice.embedded import EmbeddedBackend
from app.voice.realtime import HistoryReader, RealtimeBackend
from app.voice.speech_port import SpeechPort
from app.voice.turn import VoiceBackend

OPENAI_KEY_ENV = "OPENAI_API_KEY"


def build_backend(
    settings: Settings, speech: SpeechPort, emitter: Emitter, history: HistoryReader
) -> VoiceBackend:
    """`voice.backend`; "auto" picks the Realtime bridge when OPENAI_API_KEY is set."""
    choice = settings.voice.backend
    key = os.environ.get(OPENAI_KEY_ENV) or None
    if choice == "openai_realtime" or (choice == "auto" and key is not None):
        return RealtimeBackend(settings.voice, settings.llm, key, emitter,
                               settings.assistant.name, history)
    return EmbeddedBackend(speech)
