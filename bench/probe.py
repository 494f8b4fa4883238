"""Probe members for the cross-node run: their own, otherwise idle, process.

    python -m bench.probe '<json: {"room": ..., "members": [{"url", "token"}, ...]}>'

Each member joins the room, then every `message_received` frame is timestamped
(time.perf_counter: CLOCK_MONOTONIC, the same clock the load generator reads) the
moment it is read. The load generator is CPU-bound at 80 members; this process is not,
so its timestamps say when the frame reached the machine's socket, not when a busy
event loop got round to it. Prints READY once joined; when stdin closes, prints one
JSON line: per member the first arrival of each content, the repeats, and its CPU.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aiohttp
import orjson

from bench.eio import EioClient

REALTIME = "/assistant/realtime"
MARKER = '"content":"'


class Arrivals:
    """When each message content first reached one member, and how often it came again."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.repeats = 0

    def hook(self, name: str, body: str) -> None:
        if name != "message_received":
            return
        now = time.perf_counter()
        start = body.index(MARKER) + len(MARKER)
        content = body[start:body.index('"', start)]
        if content in self.first:
            self.repeats += 1
        else:
            self.first[content] = now


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
        print("READY", flush=True)
        cpu0 = time.process_time()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        cpu = time.process_time() - cpu0
        for client in clients:
            await client.close()
    return {"members": [{"first": a.first, "repeats": a.repeats} for a in arrivals],
            "cpu_s": cpu}


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(main(orjson.loads(sys.argv[1])))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
