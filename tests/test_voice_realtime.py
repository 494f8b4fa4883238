"""The OpenAI Realtime bridge, through the real openai SDK, against a local Realtime stub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.client import Parlour, SocketClient, User, start_parlour
from tests.realtime_stub import WORDS, RealtimeStub, pcm_of
from tests.speech_stub import tone


@pytest.fixture
async def stub() -> AsyncIterator[RealtimeStub]:
    server = RealtimeStub()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def realtime_settings(make_settings: Any, stub: RealtimeStub, llm_env: pytest.MonkeyPatch) -> Any:
    llm_env.setenv("OPENAI_API_KEY", "sk-test-realtime")

    def make(**overrides: Any) -> Any:
        return make_settings(llm__openai_base_url=stub.base_url, **overrides)
    return make


async def members(server: Parlour, other: Parlour | None = None,
                  ) -> tuple[str, User, User, SocketClient, SocketClient]:
    alice, bob = await server.signup("Alice"), await server.signup("Bob")
    a = await server.socket(alice)
    room = (await a.ok("create_room", {"room_type": "openai_realtime", "title": "Standup",
                                       "system_prompt": "Answer like a pirate."}))["room"]
    await a.ok("invite", {"room_id": room["room_id"], "email": bob.email})
    b = await (other or server).socket(bob)
    await b.ok("join_room", {"room_id": room["room_id"]})
    return room["room_id"], alice, bob, a, b


async def say(client: SocketClient, room_id: str, seconds: float = 0.5) -> bytes:
    await client.ok("voice_start", {"room_id": room_id})
    audio = tone(seconds)
    for start in range(0, len(audio), 12_000):
        await client.ok("voice_chunk", {"room_id": room_id, "audio": audio[start:start + 12_000]})
    await client.ok("voice_stop", {"room_id": room_id})
    return audio


def audio_of(client: SocketClient, message_id: str) -> bytes:
    chunks = [d for d in client.named("assistant_audio") if d["message_id"] == message_id]
    assert [d["seq"] for d in chunks] == sorted(d["seq"] for d in chunks)
    return b"".join(d["audio"] for d in chunks)


async def test_a_turn_round_trips_through_the_realtime_api_to_every_member(
    realtime_settings: Any, stub: RealtimeStub
) -> None:
    server = await start_parlour(realtime_settings())
    try:
        room_id, alice, bob, a, b = await members(server)
        sent = await say(a, room_id)
        for client in (a, b):
            done = (await client.wait("assistant_done", timeout=10))[0]
            await client.wait("voice_state", where=lambda d: d["assistant"] == "idle")
        assert done["finish_reason"] == "stop"
        message = done["message"]
        assert message["content"] == "".join(WORDS)
        assert message["model"] == "openai:gpt-realtime"
        assert message["usage"]["input_tokens"] == 100
        assert message["usage"]["output_tokens"] == 100
        assert message["usage"]["cached_tokens"] == 10
        # Priced from the catalog: text at 4/16 (cached 0.40), audio at 32/64 per million.
        text_in, cached, audio_in, out, audio_out = 10, 10, 80, 100, 75
        assert message["usage"]["cost_usd"] == pytest.approx(
            (text_in * 4 + cached * 0.4 + audio_in * 32 + (out - audio_out) * 16
             + audio_out * 64) / 1e6)
        # The same audio, in order, at both members.
        assert audio_of(a, message["message_id"]) == audio_of(b, message["message_id"]) \
            == pcm_of(WORDS)
        # The speaker's words: deltas, then the final transcript, before the answer.
        for client in (a, b):
            words = client.named("voice_transcript")
            assert [w["final"] for w in words] == [False] * 6 + [True]
            assert words[-1]["text"] == "I sent 500 ms of audio"
            assert "".join(w["text"] for w in words[:-1]).strip() == "I sent 500 ms of audio"
            assert {w["user_id"] for w in words} == {alice.user_id}
        states = [d["assistant"] for d in b.named("voice_state")]
        assert states == ["listening", "thinking", "speaking", "idle"]
        # What the Realtime API got: the model, the key, the session, the audio.
        conn = stub.connections[0]
        assert conn.query["model"] == "gpt-realtime"
        assert conn.headers["Authorization"] == "Bearer sk-test-realtime"
        update = next(e for e in conn.events if e["type"] == "session.update")["session"]
        assert "Answer like a pirate." in update["instructions"]
        assert update["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert update["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert update["audio"]["output"]["voice"] == "alloy"
        assert update["audio"]["input"]["turn_detection"] is None
        assert conn.committed == [sent]
        types = conn.types()
        assert types.index("input_audio_buffer.commit") < types.index("response.create")
        # Both turns are in history, for a late joiner too.
        status, body = await server.request("GET", f"/api/v1/chat/{room_id}/messages", bob)
        user_msg, answer = body["messages"]
        assert user_msg["input"] == "voice" and user_msg["content"] == "I sent 500 ms of audio"
        assert answer["reply_to"] == user_msg["message_id"] and answer["status"] == "complete"
        # Bob's turn reuses the room's session.
        await say(b, room_id, 0.25)
        await a.wait("assistant_done", count=2, timeout=10)
        assert len(stub.connections) == 1 and conn.committed[1] == tone(0.25)
    finally:
        await server.close()


async def test_stop_generation_cancels_the_realtime_response(
    realtime_settings: Any, stub: RealtimeStub
) -> None:
    stub.words = [f"w{i} " for i in range(60)]
    stub.delay = 0.05
    server = await start_parlour(realtime_settings())
    try:
        room_id, alice, bob, a, b = await members(server)
        await say(a, room_id)
        await b.wait("assistant_audio", count=2, timeout=10)
        await b.ok("stop_generation", {"room_id": room_id})
        done = (await b.wait("assistant_done", timeout=10))[0]
        assert done["finish_reason"] == "cancelled"
        await b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
        for _ in range(50):
            if stub.connections[0].cancelled:
                break
            await asyncio.sleep(0.02)
        assert stub.connections[0].cancelled == 1
        assert 0 < len(done["message"]["content"]) < len("".join(stub.words))
        # The floor is free and the session still answers.
        stub.words, stub.delay = ["Again."], 0.0
        await say(b, room_id, 0.25)
        second = (await a.wait("assistant_done", count=2, timeout=10))[1]
        assert second["message"]["content"] == "Again."
    finally:
        await server.close()


async def test_the_realtime_server_closing_is_a_provider_error_and_the_next_turn_reconnects(
    realtime_settings: Any, stub: RealtimeStub
) -> None:
    stub.close_on = "input_audio_buffer.commit"
    server = await start_parlour(realtime_settings())
    try:
        room_id, alice, bob, a, b = await members(server)
        await say(a, room_id)
        error = (await b.wait("error", timeout=10))[0]
        assert error["code"] == "provider_error" and error["room_id"] == room_id
        assert error["event"] == "voice_stop"
        await b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
        status, body = await server.request("GET", f"/api/v1/chat/{room_id}/messages", bob)
        assert body["messages"] == []
        # The next turn opens a new session and is answered.
        stub.close_on = None
        await say(b, room_id)
        done = (await a.wait("assistant_done", timeout=10))[0]
        assert done["message"]["content"] == "".join(WORDS)
        assert len(stub.connections) == 2
    finally:
        await server.close()


async def test_a_realtime_error_event_fails_the_answer(
    realtime_settings: Any, stub: RealtimeStub
) -> None:
    stub.error_on = "response.create"
    server = await start_parlour(realtime_settings())
    try:
        room_id, alice, bob, a, b = await members(server)
        await say(a, room_id)
        done = (await b.wait("assistant_done", timeout=10))[0]
        assert done["finish_reason"] == "error"
        assert done["message"]["status"] == "error"
        error = (await b.wait("error", timeout=10))[0]
        assert error["code"] == "provider_error" and "stub refuses" in error["message"]
        await b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
        await b.ok("voice_start", {"room_id": room_id})
    finally:
        await server.close()


async def test_beta_event_names_are_relayed_too(
    realtime_settings: Any, stub: RealtimeStub
) -> None:
    stub.legacy = True
    server = await start_parlour(realtime_settings())
    try:
        room_id, alice, bob, a, b = await members(server)
        await say(a, room_id)
        done = (await b.wait("assistant_done", timeout=10))[0]
        assert done["message"]["content"] == "".join(WORDS)
        assert audio_of(b, done["message_id"]) == pcm_of(WORDS)
    finally:
        await server.close()


async def test_an_idle_session_is_closed_and_reopened(
    realtime_settings: Any, stub: RealtimeStub
) -> None:
    server = await start_parlour(realtime_settings(voice__idle_seconds=0.4))
    try:
        room_id, alice, bob, a, b = await members(server)
        await say(a, room_id)
        await b.wait("assistant_done", timeout=10)
        for _ in range(100):
            if stub.connections[0].closed:
                break
            await asyncio.sleep(0.05)
        assert stub.connections[0].closed
        await say(b, room_id)
        await a.wait("assistant_done", count=2, timeout=10)
        assert len(stub.connections) == 2
        # The new session starts with the room's conversation so far in its instructions.
        update = next(e for e in stub.connections[1].events if e["type"] == "session.update")
        instructions = update["session"]["instructions"]
        assert "Alice: I sent 500 ms of audio" in instructions
        assert f"Assistant: {''.join(WORDS)}" in instructions
    finally:
        await server.close()


async def test_two_nodes_share_the_floor_and_the_session_follows_the_speaker(
    realtime_settings: Any, stub: RealtimeStub, redis_url: str
) -> None:
    settings = realtime_settings(redis__url=redis_url)
    one = await start_parlour(settings)
    two = await start_parlour(settings)
    try:
        room_id, alice, bob, a, b = await members(one, two)
        # Alice (node one) holds the floor: Bob (node two) cannot take it.
        await a.ok("voice_start", {"room_id": room_id})
        await b.wait("voice_state", where=lambda d: d["assistant"] == "listening")
        ack = await b.call("voice_start", {"room_id": room_id})
        assert ack["ok"] is False and ack["error"]["code"] == "conflict"
        assert "Alice" in ack["error"]["message"]
        joined = await b.ok("join_room", {"room_id": room_id})  # the floor, read on node two
        assert joined["voice"]["speaker"]["user_id"] == alice.user_id
        await a.ok("voice_chunk", {"room_id": room_id, "audio": tone(0.5)})
        await a.ok("voice_stop", {"room_id": room_id})
        done = (await b.wait("assistant_done", timeout=10))[0]
        # Bob, on the other node, heard the whole answer.
        assert audio_of(b, done["message_id"]) == pcm_of(WORDS)
        await b.wait("voice_state", where=lambda d: d["assistant"] == "idle")
        # Bob speaks on node two: the room's session moves there.
        await say(b, room_id, 0.25)
        second = (await a.wait("assistant_done", count=2, timeout=10))[1]
        assert audio_of(a, second["message_id"]) == pcm_of(WORDS)
        assert len(stub.connections) == 2
        for _ in range(100):
            if stub.connections[0].closed:
                break
            await asyncio.sleep(0.05)
        assert stub.connections[0].closed and not stub.connections[1].closed
        assert stub.connections[1].committed == [tone(0.25)]
    finally:
        await one.close()
        await two.close()


async def test_an_unreachable_realtime_api_refuses_the_turn(
    realtime_settings: Any, stub: RealtimeStub
) -> None:
    server = await start_parlour(realtime_settings())
    try:
        room_id, alice, bob, a, b = await members(server)
        await stub.close()  # nothing listens there any more
        # Every attempt says why (the refused turns hold no place in the room's queue).
        for _ in range(8):
            ack = await a.call("voice_start", {"room_id": room_id})
            assert ack["ok"] is False and ack["error"]["code"] == "provider_error"
            assert "Realtime" in ack["error"]["message"]
        # The floor was not kept.
        joined = await b.ok("join_room", {"room_id": room_id})
        assert joined["voice"] == {"speaker": None, "assistant": "idle"}
    finally:
        await server.close()
