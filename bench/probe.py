"""Probe members for the cross-node run: their own, otherwise idle, process.

    python -m bench.probe '<json: {"room", "members": [{"url", "token"}, ...], "redis"?}>'

Each member joins the room, then every `message_received` frame is timestamped
(time.perf_counter: CLOCK_MONOTONIC, the same clock the load generator reads) the
moment it is read. The load generator is CPU-bound at 80 members; this process is not,
so its timestamps say when the frame reached the machine's socket, not when a busy
event loop got round to it. With `redis` ({"url", "channel"}) it also subscribes to the
nodes' Socket.IO channel and timestamps each publication as a subscriber gets it.
Prints READY once joined; when stdin closes, prints one JSON line: per member (and for
the channel) the first arrival of each content, the repeats, and its CPU.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from bench.eio import EioClient, run_json_main

REALTIME = "/assistant/realtime"
MARKER = '"content":"'


class Arrivals:
    """When each message content first reached one member, and how often it came again."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.repeats = 0

    def hook(self, name: str, body: str) -> None:
        if name == "message_received":
            self.seen(body, time.perf_counter())

    def seen(self, body: str, now: float) -> None:
        start = body.find(MARKER)
        if start < 0:
            return
        start += len(MARKER)
        content = body[start:body.index('"', start)]
        if content in self.first:
            self.repeats += 1
        else:
            self.first[content] = now


async def listen(redis: dict[str, str], into: Arrivals, ready: asyncio.Event) -> None:
    """Timestamp every publication on the nodes' channel as a subscriber receives it."""
    client = Redis.from_url(redis["url"])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(redis["channel"])
        ready.set()
        async for message in pubsub.listen():
            if message["type"] == "message":
                into.seen(message["data"].decode(), time.perf_counter())
    finally:
        await pubsub.aclose()
        await client.aclose()


class Probe:
    """bench/probe.py as a child process: started, READY awaited, its arrivals read."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def start(cls, spec: dict[str, Any]) -> Probe:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.probe", orjson.dumps(spec).decode(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"READY":
            proc.kill()
            raise RuntimeError(f"probe did not start: {line[:300]!r}")
        return cls(proc)

    async def finish(self) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        out = await asyncio.wait_for(self._proc.stdout.read(), 60)
        await self._proc.wait()
        result: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
        return result


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        clients: list[EioClient] = []
        arrivals: list[Arrivals] = []
        for member in spec["members"]:
            client = EioClient(session, member["url"], REALTIME, {"token": member["token"]})
            await client.connect()
            ack = await client.call("join_room", {"room_id": spec["room"]})
            assert ack["ok"], ack
            seen = Arrivals()
            client.hook = seen.hook
            clients.append(client)
            arrivals.append(seen)
        published = Arrivals()
        listener = None
        if spec.get("redis"):
            ready = asyncio.Event()
            listener = asyncio.create_task(listen(spec["redis"], published, ready))
            await asyncio.wait_for(ready.wait(), 10)
        print("READY", flush=True)
        cpu0 = time.process_time()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        cpu = time.process_time() - cpu0
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        for client in clients:
            await client.close()
    return {"members": [{"first": a.first, "repeats": a.repeats} for a in arrivals],
            "published": published.first, "cpu_s": cpu}


if __name__ == "__main__":
    run_json_main(main)
