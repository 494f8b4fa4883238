"""Speech: the embedded voice and recogniser, OpenAI's audio endpoints through a recording
stub, /audio/transcriptions, /run/audio, audio and video attachments, a voice that is down."""

from __future__ import annotations

import base64
import io
import re
import wave
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import aiohttp
import av
import pytest

from app.speech.piper_voice import PiperVoice
from app.speech.whisper_local import LocalWhisper
from tests.client import Parlour, start_parlour
from tests.llm_tool_stubs import Turn
from tests.media_fixtures import short_video, spoken
from tests.media_stubs import OpenAIMediaStub
from tests.scripted_provider import ScriptedProvider
from tests.test_files import new_chat
from tests.test_media_attachments import images_sent, text_sent
from tests.tool_stubs import serve


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def test_the_embedded_voice_makes_a_valid_wav() -> None:
    voice = PiperVoice()
    data = b"".join([c async for c in voice.synthesize_stream("Hello from Parlour.", "wav")])
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == 22050 and wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        frames = wav.readframes(10**9)
    assert len(frames) == len(data) - 44 and len(frames) // 2 > 22050 // 2  # over half a second


async def test_embedded_round_trip_speak_then_recognise() -> None:
    sentence = "The quick brown fox jumps over the lazy dog."
    heard = await LocalWhisper().transcribe(await spoken(sentence), "audio/wav", "fox.wav")
    expected = words(sentence)
    assert len(expected & words(heard)) >= len(expected) - 2, heard


async def test_the_embedded_recogniser_refuses_what_is_not_audio() -> None:
    with pytest.raises(Exception) as caught:
        await LocalWhisper().transcribe(b"this is plain text, not audio" * 20, "audio/wav",
                                        "voice.wav")
    assert getattr(caught.value, "code", None) == "invalid_payload"
    assert "voice.wav" in str(caught.value)


# -- routes, embedded (no key at all) -------------------------------------------------------

@pytest.fixture
async def embedded(make_settings: Any, llm_env: pytest.MonkeyPatch) -> AsyncIterator[Parlour]:
    scripted = ScriptedProvider(deltas=["Paris ", "is ", "the ", "capital."])
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed", assistant__delta_interval_ms=0),
        providers={"scripted": scripted},
    )
    yield server
    await server.close()


async def test_transcriptions_and_run_audio_work_with_no_key(embedded: Parlour) -> None:
    user = await embedded.signup()
    question = await spoken("What is the capital of France?")
    form = aiohttp.FormData()
    form.add_field("file", question, filename="question.wav", content_type="audio/wav")
    status, data = await embedded.request("POST", "/api/v1/audio/transcriptions", user, data=form)
    assert status == 200 and {"capital", "france"} <= words(data["text"]), data

    chat_id = await new_chat(embedded, user)
    form = aiohttp.FormData()
    form.add_field("files", question, filename="question.wav", content_type="audio/wav")
    form.add_field("chat_id", chat_id)
    url = f"{embedded.url}/api/v1/run/audio"
    headers = {"Authorization": f"Bearer {user.token}"}
    async with embedded.http.post(url, data=form, headers=headers) as resp:
        body = await resp.read()
        assert resp.status == 200, body[:300]
        assert resp.headers["Content-Type"] == "audio/wav"
        assert unquote(resp.headers["X-Parlour-Transcript"]) == "Paris is the capital."
        message_id = resp.headers["X-Parlour-Message-Id"]
    with wave.open(io.BytesIO(body)) as wav:
        assert wav.getframerate() == 22050 and len(wav.readframes(10**9)) > 22050
    _, history = await embedded.request("GET", f"/api/v1/chat/{chat_id}/messages", user)
    asked, answered = history["messages"]
    assert {"capital", "france"} <= words(asked["content"])  # the spoken question, as text
    assert answered["message_id"] == message_id and answered["content"] == "Paris is the capital."

    async with embedded.http.post(f"{url}?format=mp3", json={"text": "hi"},
                                  headers=headers) as resp:
        mp3 = await resp.read()
        assert resp.status == 200 and resp.headers["Content-Type"] == "audio/mpeg"
    with av.open(io.BytesIO(mp3), format="mp3") as container:  # a real MP3 stream
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
    assert stream.codec_context.sample_rate == 22050 and samples > 22050 // 2
    status, data = await embedded.request("POST", "/api/v1/run/audio?format=ogg", user,
                                          json={"text": "hi"})
    assert status == 422 and "mp3" in data["error"]["message"], data


# -- routes with OpenAI (a recording stub) -----------------------------------------------------

@pytest.fixture
async def stub() -> AsyncIterator[tuple[OpenAIMediaStub, str]]:
    fake = OpenAIMediaStub()
    async with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
async def server(
    make_settings: Any, stub: tuple[OpenAIMediaStub, str], llm_env: pytest.MonkeyPatch,
) -> AsyncIterator[Parlour]:
    _, url = stub
    llm_env.setenv("OPENAI_API_KEY", "test-key")
    server = await start_parlour(make_settings(
        llm__openai_base_url=f"{url}/v1", llm__default_model="openai:gpt-4o-mini",
        assistant__delta_interval_ms=0,
    ))
    yield server
    await server.close()


async def test_audio_attachments_go_through_openai_transcription(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    fake.turns.append(Turn(text=("Paris.",)))
    user = await server.signup()
    audio = await spoken("What is the capital of France?")
    status, data = await server.request("POST", "/api/v1/run", user, json={
        "text": "answer the recording", "attachments": [{
            "filename": "q.wav", "content_type": "audio/wav",
            "data_base64": base64.b64encode(audio).decode()}]})
    assert status == 200 and data["answer"] == "Paris.", data
    (call,) = fake.transcriptions
    assert call["model"] == "whisper-1" and call["data"] == audio  # the bytes, as uploaded
    assert call["filename"] == "q.wav"
    assert "what is the capital of France" in text_sent(fake.requests[0])

    status, data = await server.request("POST", "/api/v1/run", user, json={
        "text": "listen", "attachments": [{
            "filename": "voice.wav", "content_type": "audio/wav",
            "data_base64": base64.b64encode(b"not audio at all").decode()}]})
    assert status == 422 and "voice.wav" in data["error"]["message"], data
    assert len(fake.transcriptions) == 1 and len(fake.requests) == 1


async def test_video_gives_frames_and_its_transcript(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    fake.turns.append(Turn(text=("A fade to white.",)))
    user = await server.signup()
    form = aiohttp.FormData()
    form.add_field("text", "what happens in this clip?")
    form.add_field("files", short_video(), filename="clip.mp4", content_type="video/mp4")
    status, data = await server.request("POST", "/api/v1/run", user, data=form)
    assert status == 200 and data["answer"] == "A fade to white.", data
    frames = images_sent(fake.requests[0])
    assert len(frames) == 4 and all(f.size == (320, 240) for f in frames)
    brightness = [f.convert("L").getpixel((10, 10)) for f in frames]
    assert brightness == sorted(brightness) and brightness[0] < brightness[-1]
    assert len(fake.transcriptions) == 1  # the audio track
    assert fake.transcript in text_sent(fake.requests[0])


async def test_run_audio_speaks_with_openai_and_a_voice_that_is_down_keeps_the_text(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    fake.turns += [Turn(text=("Paris ", "is the capital.")), Turn(text=("Still Paris.",))]
    user = await server.signup()
    url = f"{server.url}/api/v1/run/audio"
    headers = {"Authorization": f"Bearer {user.token}"}
    async with server.http.post(url, json={"text": "capital of France?"}, headers=headers) as resp:
        body = await resp.read()
        assert resp.status == 200 and resp.headers["Content-Type"] == "audio/mpeg"
        assert unquote(resp.headers["X-Parlour-Transcript"]) == "Paris is the capital."
    assert body.startswith(b"ID3")
    assert fake.speeches[0]["input"] == "Paris is the capital."
    assert fake.speeches[0]["model"] == "gpt-4o-mini-tts"

    fake.speech_status = 503
    chat_id = await new_chat(server, user)
    async with server.http.post(f"{url}?format=wav", headers=headers,
                                json={"text": "again?", "chat_id": chat_id}) as resp:
        error = await resp.json()
        assert resp.status == 502 and error["error"]["code"] == "provider_error", error
    _, history = await server.request("GET", f"/api/v1/chat/{chat_id}/messages", user)
    answer = history["messages"][-1]
    assert answer["content"] == "Still Paris." and answer["status"] == "complete"
    assert answer["message_id"] in error["error"]["message"]
    metrics = await (await server.http.get(f"{server.url}/internal/metrics")).text()
    assert 'parlour_speech_total{op="speak",outcome="ok"} 1.0' in metrics


