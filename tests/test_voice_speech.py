"""The speech providers as the voice rooms' port: WAV for the recogniser, 24 kHz voice."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator

import numpy as np
import pytest

from app.errors import AppError
from app.voice.sentences import SentenceSplitter
from app.voice.speech_adapter import SpeechAdapter, resample, wav_of
from tests.speech_stub import tone


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / samples.size)


def test_resampling_keeps_length_in_time_and_pitch() -> None:
    piper = tone(1.0, 440.0, rate=22_050)
    out = resample(piper, 22_050)
    assert len(out) == 2 * 24_000
    assert abs(dominant_hz(out, 24_000) - 440.0) < 2
    assert resample(b"", 22_050) == b""
    assert resample(piper, 24_000, 24_000) == piper


def test_a_turn_reaches_the_recogniser_as_a_wav() -> None:
    pcm = tone(0.5)
    with wave.open(io.BytesIO(wav_of(pcm, 24_000))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24_000)
        assert wav.readframes(wav.getnframes()) == pcm


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, str, str]] = []

    async def transcribe(self, audio: bytes, mime: str, filename: str = "audio") -> str:
        self.got.append((audio, mime, filename))
        return "hello there"


class Voice22k:
    sample_rate = 22_050

    async def synthesize_stream(self, text: str, audio_format: str = "pcm"
                                ) -> AsyncIterator[bytes]:
        assert audio_format == "pcm"
        pcm = tone(0.01 * len(text), rate=22_050)
        yield pcm[: len(pcm) // 2]
        yield pcm[len(pcm) // 2:]


async def test_the_adapter_speaks_at_24_khz_and_hears_wav() -> None:
    recorder = Recorder()
    port = SpeechAdapter(recorder, Voice22k())
    assert port.can_transcribe and port.can_speak
    assert await port.transcribe(tone(0.2), 24_000) == "hello there"
    audio, mime, _ = recorder.got[0]
    assert mime == "audio/wav" and audio.startswith(b"RIFF")
    spoken = b"".join([c async for c in port.synthesize("x" * 100)])
    assert abs(len(spoken) - 2 * 24_000) <= 4
    nothing = SpeechAdapter(None, None)
    assert not nothing.can_transcribe and not nothing.can_speak
    with pytest.raises(AppError) as err:
        await nothing.transcribe(b"\0\0", 24_000)
    assert err.value.code == "unavailable"


def test_sentences_come_out_as_they_end() -> None:
    split = SentenceSplitter(max_chars=40)
    assert split.push("It costs 3.") == []  # "3." may go on ("3.14")
    assert split.push("14 euros. Then") == ["It costs 3.14 euros."]
    assert split.push(" more!\nNext") == ["Then more!"]
    # Too long without an end: cut at the last space within 40 characters.
    assert split.push(" " + "word " * 12) == ["Next" + " word" * 7]
    assert split.flush() == "word word word word word"
