"""Voice rooms, the room side: floor control, bounds, spoken turns answered and kept.

The embedded pipeline answers here, with a scripted recogniser/voice (tests/speech_stub.py)
and the scripted LLM provider; the OpenAI Realtime bridge has its own tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.client import Parlour, SocketClient, User, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.speech_stub import ScriptedSpeech, tone

ANSWER = ["It is sunny. ", "Take a hat ", "and some water. ", "Enjoy the day!"]


@dataclass
class VoiceRoom:
    server: Parlour
    room_id: str
    alice: User
    bob: User
    a: SocketClient
    b: SocketClient
    provider: ScriptedProvider
    speech: ScriptedSpeech


async def open_room(server: Parlour, provider: ScriptedProvider, speech: ScriptedSpeech,
                    model: str = "scripted:fixed") -> VoiceRoom:
    alice, bob = await server.signup("Alice"), await server.signup("Bob")
    a = await server.socket(alice)
    room = (await a.ok("create_room", {"room_type": "openai_realtime", "model": model,
                                       "title": "Voice"}))["room"]
    await a.ok("invite", {"room_id": room["room_id"], "email": bob.email})
    b = await server.socket(bob)
    await b.ok("join_room", {"room_id": room["room_id"]})
    return VoiceRoom(server, room["room_id"], alice, bob, a, b, provider, speech)


@pytest.fixture
async def voice(make_settings: Any) -> AsyncIterator[VoiceRoom]:
    provider = ScriptedProvider(deltas=ANSWER)
    speech = ScriptedSpeech()
    server = await start_parlour(make_settings(voice__max_turn_seconds=2),
                                 providers={"scripted": provider}, speech=speech)
    try:
        yield await open_room(server, provider, speech)
    finally:
        await server.close()


def code(ack: dict[str, Any]) -> str:
    assert ack["ok"] is False, ack
    return str(ack["error"]["code"])


async def speak(client: SocketClient, room_id: str, seconds: float = 0.5) -> bytes:
    """Take the floor and send `seconds` of audio in 250 ms chunks (not yet stopped)."""
    await client.ok("voice_start", {"room_id": room_id})
    audio = tone(seconds)
    for start in range(0, len(audio), 12_000):
        await client.ok("voice_chunk", {"room_id": room_id, "audio": audio[start:start + 12_000]})
    return audio


async def test_a_spoken_turn_is_answered_aloud_to_everyone_and_kept_as_text(
    voice: VoiceRoom,
) -> None:
    audio = await speak(voice.a, voice.room_id)
    await voice.a.ok("voice_stop", {"room_id": voice.room_id})
    for client in (voice.a, voice.b):
        done = (await client.wait("assistant_done", timeout=10))[0]
        assert done["finish_reason"] == "stop"
        assert done["message"]["content"] == "".join(ANSWER)
        await client.wait("voice_state", where=lambda d: d["assistant"] == "idle")
    # The recogniser got the whole turn.
    assert voice.speech.heard == [audio]
    # Both members saw the same sequence of states and the speaker's words.
    states = [(d["speaker"] and d["speaker"]["name"], d["assistant"])
              for d in voice.b.named("voice_state")]
    assert states == [("Alice", "listening"), (None, "thinking"), (None, "speaking"),
                      (None, "idle")]
    for client in (voice.a, voice.b):
        transcript = client.named("voice_transcript")
        assert transcript == [{"room_id": voice.room_id, "user_id": voice.alice.user_id,
                               "text": "what is the weather like", "final": True}]
    # The same audio, in order, to both members; spoken sentence by sentence.
    heard_a, heard_b = voice.a.named("assistant_audio"), voice.b.named("assistant_audio")
    assert heard_a == heard_b and heard_a
    assert [d["seq"] for d in heard_a] == list(range(1, len(heard_a) + 1))
    assert all(isinstance(d["audio"], bytes) and len(d["audio"]) <= 48_000 for d in heard_a)
    message_id = done["message_id"]
    assert {d["message_id"] for d in heard_a} == {message_id}
    assert voice.speech.spoken == ["It is sunny.", "Take a hat and some water.", "Enjoy the day!"]
    total = sum(len(d["audio"]) for d in heard_a)
    assert total == sum(len(tone(0.02 * len(s))) for s in voice.speech.spoken)
    # The model was asked with the transcript as the user's turn.
    assert voice.provider.prompts[-1][-1].content.endswith("what is the weather like")
    # History reads like a transcript, for a late joiner too.
    carol = await voice.server.signup("Carol")
    await voice.a.ok("invite", {"room_id": voice.room_id, "email": carol.email})
    c = await voice.server.socket(carol)
    joined = await c.ok("join_room", {"room_id": voice.room_id})
    assert joined["voice"] == {"speaker": None, "assistant": "idle"}
    user_msg, answer = joined["messages"][-2:]
    assert user_msg["role"] == "user" and user_msg["input"] == "voice"
    assert user_msg["content"] == "what is the weather like"
    assert user_msg["author"]["user_id"] == voice.alice.user_id
    assert answer["role"] == "assistant" and answer["reply_to"] == user_msg["message_id"]
    assert answer["content"] == "".join(ANSWER) and answer["status"] == "complete"
    # Replay after a reconnect returns them too.
    replay = await c.ok("join_room", {"room_id": voice.room_id,
                                      "since_seq": user_msg["seq"] - 1})
    assert [m["message_id"] for m in replay["messages"]] == [user_msg["message_id"],
                                                             answer["message_id"]]
    # The floor is free again: Bob can speak next.
    await voice.b.ok("voice_start", {"room_id": voice.room_id})


async def test_one_member_holds_the_floor_at_a_time(voice: VoiceRoom) -> None:
    await voice.a.ok("voice_start", {"room_id": voice.room_id})
    await voice.b.wait("voice_state", where=lambda d: d["assistant"] == "listening")
    assert code(await voice.b.call("voice_start", {"room_id": voice.room_id})) == "conflict"
    # Chunks without the floor are refused.
    ack = await voice.b.call("voice_chunk", {"room_id": voice.room_id, "audio": tone(0.1)})
    assert code(ack) == "forbidden"
    assert code(await voice.b.call("voice_stop", {"room_id": voice.room_id})) == "forbidden"
    # Alice's second tab cannot speak over her first one either.
    a2 = await voice.server.socket(voice.alice)
    await a2.ok("join_room", {"room_id": voice.room_id})
    assert code(await a2.call("voice_start", {"room_id": voice.room_id})) == "conflict"
    # Who holds the floor is part of join_room (a late joiner's page shows it).
    joined = await a2.ok("join_room", {"room_id": voice.room_id})
    assert joined["voice"] == {"speaker": {"user_id": voice.alice.user_id, "name": "Alice"},
                               "assistant": "listening"}
    # A retried voice_start on the speaking socket is fine.
    await voice.a.ok("voice_start", {"room_id": voice.room_id})
    # Cancelled: nothing is stored, the floor is free.
    await voice.a.ok("voice_chunk", {"room_id": voice.room_id, "audio": tone(0.1)})
    await voice.a.ok("voice_cancel", {"room_id": voice.room_id})
    await voice.b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
    await voice.b.ok("voice_start", {"room_id": voice.room_id})
    status, body = await voice.server.request(
        "GET", f"/api/v1/chat/{voice.room_id}/messages", voice.alice)
    assert status == 200 and body["messages"] == []
    assert voice.speech.heard == []


async def test_a_viewer_cannot_take_the_floor(voice: VoiceRoom) -> None:
    viewer = await voice.server.signup("Vera")
    await voice.a.ok("invite", {"room_id": voice.room_id, "email": viewer.email,
                                "role": "viewer"})
    v = await voice.server.socket(viewer)
    await v.ok("join_room", {"room_id": voice.room_id})
    assert code(await v.call("voice_start", {"room_id": voice.room_id})) == "forbidden"
    outsider = await voice.server.signup("Oscar")
    o = await voice.server.socket(outsider)
    assert code(await o.call("voice_start", {"room_id": voice.room_id})) == "not_found"


async def test_chunks_must_be_binary_and_at_most_one_second(voice: VoiceRoom) -> None:
    await voice.a.ok("voice_start", {"room_id": voice.room_id})
    too_big = tone(1.0) + b"\0\0"
    ack = await voice.a.call("voice_chunk", {"room_id": voice.room_id, "audio": too_big})
    assert code(ack) == "payload_too_large" and "48000" in ack["error"]["message"]
    ack = await voice.a.call("voice_chunk", {"room_id": voice.room_id, "audio": "AAAA"})
    assert code(ack) == "invalid_payload" and "audio" in ack["error"]["message"]
    ack = await voice.a.call("voice_chunk", {"room_id": voice.room_id, "audio": b"\0\0\0"})
    assert code(ack) == "invalid_payload"
    # Without an ack the error arrives as an event.
    await voice.a.emit("voice_chunk", {"room_id": voice.room_id, "audio": too_big})
    error = (await voice.a.wait("error"))[0]
    assert error["code"] == "payload_too_large" and error["event"] == "voice_chunk"
    assert error["room_id"] == voice.room_id
    # A full second is fine.
    await voice.a.ok("voice_chunk", {"room_id": voice.room_id, "audio": tone(1.0)})
    # A turn too short to hold words is refused at voice_stop, and dropped.
    await voice.a.ok("voice_cancel", {"room_id": voice.room_id})
    await voice.a.ok("voice_start", {"room_id": voice.room_id})
    await voice.a.ok("voice_chunk", {"room_id": voice.room_id, "audio": tone(0.05)})
    ack = await voice.a.call("voice_stop", {"room_id": voice.room_id})
    assert code(ack) == "invalid_payload" and "0.1 s" in ack["error"]["message"]
    await voice.b.ok("voice_start", {"room_id": voice.room_id})
    assert voice.speech.heard == []


async def test_a_turn_longer_than_max_turn_seconds_is_refused_past_the_limit(
    voice: VoiceRoom,
) -> None:
    # voice.max_turn_seconds is 2 in this fixture: two full seconds fit, not a sample more.
    await voice.a.ok("voice_start", {"room_id": voice.room_id})
    for _ in range(2):
        await voice.a.ok("voice_chunk", {"room_id": voice.room_id, "audio": tone(1.0)})
    ack = await voice.a.call("voice_chunk", {"room_id": voice.room_id, "audio": b"\0\0"})
    assert code(ack) == "payload_too_large"
    assert "voice.max_turn_seconds" in ack["error"]["message"]
    # What fit is still answered.
    await voice.a.ok("voice_stop", {"room_id": voice.room_id})
    await voice.b.wait("assistant_done", timeout=10)
    assert [len(a) for a in voice.speech.heard] == [2 * 48_000]


async def test_the_speaker_disconnecting_releases_the_floor(voice: VoiceRoom) -> None:
    await speak(voice.a, voice.room_id, 0.25)
    await voice.a.disconnect()
    idle = await voice.b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
    assert idle[0]["speaker"] is None
    await voice.b.ok("voice_start", {"room_id": voice.room_id})
    assert voice.speech.heard == []  # the dropped turn was never answered


async def test_stop_generation_interrupts_the_spoken_answer(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=[f"Sentence number {i}. " for i in range(40)],
                                delay=0.05)
    speech = ScriptedSpeech()
    server = await start_parlour(make_settings(), providers={"scripted": provider},
                                 speech=speech)
    try:
        voice = await open_room(server, provider, speech)
        await speak(voice.a, voice.room_id)
        await voice.a.ok("voice_stop", {"room_id": voice.room_id})
        await voice.b.wait("assistant_audio")
        b2 = await server.socket(voice.bob)
        joined = await b2.ok("join_room", {"room_id": voice.room_id})
        assert joined["voice"] == {"speaker": None, "assistant": "speaking"}
        assert joined["active_stream"]["content"]  # the answer so far, as in text rooms
        # Bob (not the speaker) stops the answer, as for any reply.
        await voice.b.ok("stop_generation", {"room_id": voice.room_id})
        done = (await voice.b.wait("assistant_done", timeout=10))[0]
        assert done["finish_reason"] == "cancelled"
        await voice.b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
        heard = len(voice.b.named("assistant_audio"))
        saved = done["message"]["content"]
        assert saved and len(saved) < len("".join(provider.deltas))
        # Nothing more is spoken after the stop, and the floor is free.
        await voice.a.ok("voice_start", {"room_id": voice.room_id})
        assert len(voice.b.named("assistant_audio")) == heard
        status, body = await server.request(
            "GET", f"/api/v1/chat/{voice.room_id}/messages", voice.bob)
        assert [m["status"] for m in body["messages"]] == ["complete", "cancelled"]
    finally:
        await server.close()


async def test_voice_needs_a_voice_room_and_a_recogniser(make_settings: Any) -> None:
    provider = ScriptedProvider()
    speech = ScriptedSpeech(can_transcribe=False)
    server = await start_parlour(make_settings(), providers={"scripted": provider},
                                 speech=speech)
    try:
        voice = await open_room(server, provider, speech)
        ack = await voice.a.call("voice_start", {"room_id": voice.room_id})
        assert code(ack) == "unavailable"
        assert "OPENAI_API_KEY" in ack["error"]["message"]
        text_room = (await voice.a.ok("create_room", {"model": "scripted:fixed"}))["room"]
        ack = await voice.a.call("voice_start", {"room_id": text_room["room_id"]})
        assert code(ack) == "invalid_payload" and "voice room" in ack["error"]["message"]
        # Text messages in a voice room are answered in text, as anywhere.
        await voice.a.ok("send_message", {"room_id": voice.room_id,
                                          "content": "@assistant hello"})
        done = (await voice.b.wait("assistant_done", timeout=10))[0]
        assert done["finish_reason"] == "stop"
    finally:
        await server.close()


async def test_a_turn_nobody_stops_is_dropped_after_its_limit(make_settings: Any) -> None:
    provider, speech = ScriptedProvider(), ScriptedSpeech()
    server = await start_parlour(
        make_settings(voice__max_turn_seconds=0.5, voice__turn_grace_seconds=0.3),
        providers={"scripted": provider}, speech=speech)
    try:
        voice = await open_room(server, provider, speech)
        await speak(voice.a, voice.room_id, 0.25)
        # Alice never says voice_stop: the floor comes back by itself, nothing is answered.
        await voice.b.wait("voice_state", where=lambda d: d["assistant"] == "idle", timeout=5)
        ack = await voice.a.call("voice_stop", {"room_id": voice.room_id})
        assert code(ack) == "forbidden"
        await voice.b.ok("voice_start", {"room_id": voice.room_id})
        assert speech.heard == []
    finally:
        await server.close()


async def test_voice_cancel_after_stop_ends_the_answer(make_settings: Any) -> None:
    provider = ScriptedProvider(deltas=[f"Part {i}. " for i in range(40)], delay=0.05)
    speech = ScriptedSpeech()
    server = await start_parlour(make_settings(), providers={"scripted": provider},
                                 speech=speech)
    try:
        voice = await open_room(server, provider, speech)
        await speak(voice.a, voice.room_id)
        await voice.a.ok("voice_stop", {"room_id": voice.room_id})
        await voice.b.wait("assistant_delta")
        # Only the speaker can cancel their turn.
        assert code(await voice.b.call("voice_cancel", {"room_id": voice.room_id})) == "forbidden"
        await voice.a.ok("voice_cancel", {"room_id": voice.room_id})
        done = (await voice.b.wait("assistant_done", timeout=10))[0]
        assert done["finish_reason"] == "cancelled"
        await voice.b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
        await voice.b.ok("voice_start", {"room_id": voice.room_id})
    finally:
        await server.close()


async def test_typed_questions_in_a_voice_room_are_answered_aloud_too(
    voice: VoiceRoom,
) -> None:
    await voice.b.ok("send_message", {"room_id": voice.room_id, "content": "@assistant hi"})
    done = (await voice.a.wait("assistant_done", timeout=10))[0]
    assert done["message"]["content"] == "".join(ANSWER)
    heard = voice.a.named("assistant_audio")
    assert heard and {d["message_id"] for d in heard} == {done["message_id"]}
    assert [d["seq"] for d in heard] == list(range(1, len(heard) + 1))
    assert voice.b.named("assistant_audio") == heard
    # Not a voice turn: nobody took the floor.
    assert voice.a.named("voice_state") == []
