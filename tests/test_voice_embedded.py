"""Voice rooms with no key: the embedded recogniser (faster-whisper tiny.en) hears a turn
spoken by the embedded voice (Piper), the room's model answers, Piper speaks the answer."""

from __future__ import annotations

from typing import Any

import pytest

from app.voice.speech_adapter import resample
from tests.client import start_parlour
from tests.scripted_provider import ScriptedProvider

# The speech providers (app/speech) come with the attachments-and-speech work; until they
# are in this tree the embedded pipeline is covered with scripted speech (test_voice_rooms).
piper_voice = pytest.importorskip("app.speech.piper_voice")
whisper_local = pytest.importorskip("app.speech.whisper_local")
PiperVoice = piper_voice.PiperVoice

pytestmark = pytest.mark.skipif(
    not (whisper_local.whisper_installed() and piper_voice.piper_installed()),
    reason="the embedded recogniser and voice are installed by make install",
)


async def speak(text: str) -> bytes:
    """`text` spoken by the embedded voice, at 24 kHz."""
    voice = PiperVoice()
    try:
        pcm = b"".join([c async for c in voice.synthesize_stream(text, "pcm")])
        return resample(pcm, voice.sample_rate)
    finally:
        await voice.close()


async def test_a_spoken_question_is_heard_answered_and_spoken_without_a_key(
    make_settings: Any, llm_env: Any
) -> None:
    question = await speak("What is the capital of France?")
    provider = ScriptedProvider(deltas=["Paris is the capital. ", "It is lovely."])
    server = await start_parlour(make_settings(voice__backend="embedded"),
                                 providers={"scripted": provider})
    try:
        alice, bob = await server.signup("Alice"), await server.signup("Bob")
        a = await server.socket(alice)
        room = (await a.ok("create_room", {"room_type": "openai_realtime",
                                           "model": "scripted:fixed"}))["room"]
        await a.ok("invite", {"room_id": room["room_id"], "email": bob.email})
        b = await server.socket(bob)
        await b.ok("join_room", {"room_id": room["room_id"]})
        await a.ok("voice_start", {"room_id": room["room_id"]})
        for start in range(0, len(question), 48_000):
            await a.ok("voice_chunk", {"room_id": room["room_id"],
                                       "audio": question[start:start + 48_000]})
        await a.ok("voice_stop", {"room_id": room["room_id"]})
        heard = (await b.wait("voice_transcript", timeout=60))[0]
        assert heard["final"] and "capital" in heard["text"].lower()
        assert "france" in heard["text"].lower()
        done = (await b.wait("assistant_done", timeout=60))[0]
        assert done["message"]["content"] == "Paris is the capital. It is lovely."
        audio = b"".join(d["audio"] for d in b.named("assistant_audio"))
        assert len(audio) > 24_000 * 2 * 1.0  # more than a second of Piper at 24 kHz
    finally:
        await server.close()
