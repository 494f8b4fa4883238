"""Fan-out and streaming benchmark against a real Parlour on loopback.

    .venv/bin/python -m bench.run [--clients 50] [--messages 200] [--deltas 400]

Starts SecantusDB and Parlour (scripted provider, no network), connects N Socket.IO
clients to one room, then measures:
- message fan-out: send_message ack time, and time until every client received it;
- streaming: one reply of D deltas; delta events per client and time to first delta.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from app.config import load_settings
from storage.embedded_mongo import EmbeddedMongo
from tests.client import SocketClient, start_parlour
from tests.scripted_provider import ScriptedProvider


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(clients: int, messages: int, deltas: int) -> None:
    mongo = EmbeddedMongo(":memory:")
    uri = await mongo.start()
    provider = ScriptedProvider(deltas=[f"tok{i} " for i in range(deltas)], delay=0.001)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, data_dir=str(Path(tmp)), mongo__uri=uri,
            mongo__database=f"b{uuid.uuid4().hex[:8]}",
            auth__jwt_secret="bench-secret-0123456789-0123456789", llm__local_enabled=False,
            limits__messages_per_minute=100_000, limits__max_members=clients + 1,
            server__log_level="WARNING", server__log_format="text",
        )
        server = await start_parlour(settings, providers={"scripted": provider})
        try:
            await run(server, clients, messages, deltas)
        finally:
            await server.close()
    await mongo.stop()


async def run(server: Any, clients: int, messages: int, deltas: int) -> None:
    owner = await server.signup()
    sender = await server.socket(owner)
    room = (await sender.ok("create_room", {"model": "scripted:fixed",
                                            "assistant_mode": "mention"}))["room"]
    room_id = room["room_id"]
    listeners: list[SocketClient] = []
    for _ in range(clients):
        user = await server.signup()
        await sender.ok("invite", {"room_id": room_id, "email": user.email})
        client = await server.socket(user)
        await client.ok("join_room", {"room_id": room_id})
        listeners.append(client)

    acks, fanout = [], []
    for i in range(messages):
        t0 = time.perf_counter()
        await sender.ok("send_message", {"room_id": room_id, "content": f"m{i}"})
        acks.append(time.perf_counter() - t0)
        for client in listeners:
            await client.wait("message_received", count=i + 1, timeout=30)
        fanout.append(time.perf_counter() - t0)
    print(f"clients={clients} messages={messages}")
    print(f"send_message ack      p50={pct(acks, 50)*1000:.1f} ms  p95={pct(acks, 95)*1000:.1f} ms")
    print(f"fan-out to all        p50={pct(fanout, 50)*1000:.1f} ms  "
          f"p95={pct(fanout, 95)*1000:.1f} ms  ({messages / sum(fanout):.0f} msg/s sequential)")

    for attempt in (1, 2):  # the first reply also warms the embedder (recall indexing)
        await stream_once(sender, listeners, room_id, deltas, attempt)


async def stream_once(
    sender: SocketClient, listeners: list[SocketClient], room_id: str, deltas: int, n: int
) -> None:
    for c in [sender, *listeners]:
        c.events.clear()
    t0 = time.perf_counter()
    await sender.ok("send_message", {"room_id": room_id, "content": "@assistant go"})
    first = await asyncio.gather(*(c.wait("assistant_delta", timeout=30) for c in listeners))
    ttfd = time.perf_counter() - t0
    done = await asyncio.gather(*(c.wait("assistant_done", timeout=120) for c in listeners))
    total = time.perf_counter() - t0
    per_client = [len(c.named("assistant_delta")) for c in listeners]
    content = done[0][0]["message"]["content"]
    ok = all("".join(d["delta"] for d in c.named("assistant_delta")) == content for c in listeners)
    print(f"stream {n}: {len(content)} chars in {total:.2f}s, first delta to all "
          f"{ttfd*1000:.0f} ms, delta events per client mean={statistics.mean(per_client):.0f} "
          f"(provider deltas {deltas}), all clients identical={ok}, {len(first)} clients")

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--deltas", type=int, default=400)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.messages, args.deltas))
