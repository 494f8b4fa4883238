"""Voice-room overhead: Parlour's own time around a spoken turn, against a zero-delay
OpenAI Realtime stub (tests/realtime_stub.py) on loopback.

    .venv/bin/python -m bench.voice [--turns 20] [--seconds 2]

Two members in a voice room (one speaks, one listens). Per turn: `voice_chunk` ack round
trips (250 ms chunks of PCM16 24 kHz), then `voice_stop` → the listener's first
`assistant_audio`, and `voice_stop` → `assistant_done`. The stub answers at once, so
these are the bridge's costs (commit, transcript, storing the user's message, starting
the reply, relaying), not a model's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from app.config import load_settings
from storage.embedded_mongo import EmbeddedMongo
from tests.client import start_parlour
from tests.realtime_stub import RealtimeStub
from tests.speech_stub import tone


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def line(name: str, values: list[float]) -> str:
    return (f"{name:<40} p50 {statistics.median(values):7.2f} ms   "
            f"p95 {pct(values, 95):7.2f} ms   max {max(values):7.2f} ms   (n={len(values)})")


async def main(turns: int, seconds: float) -> None:
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    stub = RealtimeStub()
    await stub.start()
    mongo = EmbeddedMongo(":memory:")
    uri = await mongo.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, data_dir=str(Path(tmp) / "data"), mongo__uri=uri,
            mongo__database=f"b_{uuid.uuid4().hex[:8]}", server__log_format="text",
            server__log_level="WARNING", auth__jwt_secret="bench-secret-0123456789abcdef-01234",
            llm__local_enabled=False, llm__openai_base_url=stub.base_url,
        )
        server = await start_parlour(settings)
        try:
            alice, bob = await server.signup("Alice"), await server.signup("Bob")
            a = await server.socket(alice)
            room = (await a.ok("create_room", {"room_type": "openai_realtime"}))["room"]
            room_id = room["room_id"]
            await a.ok("invite", {"room_id": room_id, "email": bob.email})
            b = await server.socket(bob)
            await b.ok("join_room", {"room_id": room_id})
            audio = tone(seconds)
            chunk_ms: list[float] = []
            first_audio: list[float] = []
            done_ms: list[float] = []
            for turn in range(turns):
                await a.ok("voice_start", {"room_id": room_id})
                for start in range(0, len(audio), 12_000):
                    t0 = time.perf_counter()
                    await a.ok("voice_chunk", {"room_id": room_id,
                                               "audio": audio[start:start + 12_000]})
                    chunk_ms.append((time.perf_counter() - t0) * 1000)
                b.events.clear()
                t0 = time.perf_counter()
                await a.ok("voice_stop", {"room_id": room_id})
                await b.wait("assistant_audio", timeout=30)
                first_audio.append((time.perf_counter() - t0) * 1000)
                await b.wait("voice_state", timeout=30, where=lambda d: d["assistant"] == "idle")
                done_ms.append((time.perf_counter() - t0) * 1000)
                if turn == 0:
                    chunk_ms.clear()  # the first turn opens the Realtime session
            print(f"voice bench: {turns} turns of {seconds:g} s, 250 ms chunks")
            print(line("voice_chunk ack round trip", chunk_ms))
            print(line("voice_stop -> first assistant_audio", first_audio[1:] or first_audio))
            print(line("voice_stop -> voice_state idle", done_ms[1:] or done_ms))
        finally:
            await server.close()
            await mongo.stop()
            await stub.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.seconds))
