"""Soak: users chatting in shared rooms for minutes; fails when the server's memory grows.

    python -m bench.soak [--minutes 3] [--users 24] [--rooms 6] [--warmup 60]
                         [--max-growth-mb 40] [--max-block-growth 3] [--tracemalloc]

The server runs in its own process (bench/soak_server.py, a streaming stub provider and
the embedded embedder). Users send messages, ask the assistant (`@assistant`), stop
some replies and reconnect now and then with `since_seq`. After the warm-up the server's
memory is sampled; the run fails (exit 1) if the floor of its RSS (lowest of the first
third of samples against the last third) rose more than --max-growth-mb, or Python's
allocated blocks more than --max-block-growth percent. With --tracemalloc the allocation
sites that grew are printed (slower server; use it to find a leak, not to measure RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from storage.embedded_mongo import EmbeddedMongo
from tests.servers import free_port, wait_port

NS = "/assistant/realtime"
OK_FAILURES = {"conflict", "rate_limited", "not_found"}


class Soak:
    """The load: per user one task, sharing counters."""

    def __init__(self, url: str, users: int, rooms: int, seed: int, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.users = users
        self.rooms = rooms
        self.rand = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.stopping = asyncio.Event()

    async def signup(self, http: aiohttp.ClientSession, n: int) -> dict[str, Any]:
        email = f"soak{n}.{uuid.uuid4().hex[:6]}@example.com"
        async with http.post(f"{self.url}/api/v1/auth/signup", json={
            "email": email, "password": "soak password 1", "name": f"Soak {n}",
        }) as resp:
            data: dict[str, Any] = await resp.json()
        return {"email": email, "token": data["access_token"], "user_id": data["user"]["user_id"]}

    async def client(self, token: str) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("*", namespace=NS)  # type: ignore[untyped-decorator]
        async def record(event: str, data: Any = None) -> None:
            self.counts[f"recv:{event}"] += 1
            if event == "assistant_started":
                sio.started = data  # type: ignore[attr-defined]
            if isinstance(data, dict):
                message = data.get("message")
                if isinstance(message, dict) and isinstance(message.get("seq"), int):
                    sio.last_seq = max(getattr(sio, "last_seq", 0), message["seq"])  # type: ignore[attr-defined]

        await sio.connect(self.url, namespaces=[NS], auth={"token": token},
                          transports=["websocket"], wait_timeout=10)
        return sio

    async def call(self, sio: socketio.AsyncClient, event: str, payload: Any) -> Any:
        ack = await sio.call(event, payload, namespace=NS, timeout=self.timeout)
        if ack["ok"]:
            self.counts[f"ok:{event}"] += 1
            return ack["data"]
        code = ack["error"]["code"]
        self.counts[f"{code}:{event}"] += 1
        if code not in OK_FAILURES:
            raise RuntimeError(f"{event}: {ack['error']}")
        return None

    async def setup(self) -> list[tuple[dict[str, Any], str]]:
        async with aiohttp.ClientSession() as http:
            people = [await self.signup(http, n) for n in range(self.users)]
        seats: list[tuple[dict[str, Any], str]] = []
        for r in range(self.rooms):
            members = people[r :: self.rooms]
            owner = await self.client(members[0]["token"])
            room = await self.call(owner, "create_room", {
                "title": f"soak {r}", "assistant_mode": "mention",
            })
            room_id = room["room"]["room_id"]
            for member in members[1:]:
                await self.call(owner, "invite", {"room_id": room_id, "email": member["email"]})
            await owner.disconnect()
            seats += [(member, room_id) for member in members]
        return seats

    async def user(self, person: dict[str, Any], room_id: str) -> None:
        rand = random.Random(self.rand.random())
        sio = await self.client(person["token"])
        await self.call(sio, "join_room", {"room_id": room_id})
        n = 0
        while not self.stopping.is_set():
            await asyncio.sleep(rand.uniform(0.8, 2.0))
            n += 1
            if rand.random() < 1 / 40:
                since = getattr(sio, "last_seq", 0)
                await sio.disconnect()
                self.counts["reconnects"] += 1
                sio = await self.client(person["token"])
                sio.last_seq = since  # type: ignore[attr-defined]
                await self.call(sio, "join_room", {"room_id": room_id, "since_seq": since})
                continue
            ask = rand.random() < 1 / 6
            prefix = "@assistant " if ask else ""
            content = f"{prefix}message {n} " + "lorem ipsum " * rand.randint(1, 30)
            sent = await self.call(sio, "send_message", {"room_id": room_id, "content": content})
            self.counts["questions" if ask else "messages"] += 1
            if ask and sent is not None and rand.random() < 0.4:
                await asyncio.sleep(rand.uniform(0.2, 1.0))
                await self.call(sio, "stop_generation", {"room_id": room_id})
                self.counts["stops"] += 1
        await sio.disconnect()


def sample(server: subprocess.Popen[bytes], stats: Path) -> dict[str, Any]:
    """Ask the server for a memory report and read it."""
    stats.unlink(missing_ok=True)
    server.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 300  # a tracemalloc snapshot of a busy server is slow
    while not stats.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server wrote no memory report")
        time.sleep(0.1)
    data: dict[str, Any] = json.loads(stats.read_text())
    return data


async def run(args: argparse.Namespace) -> int:
    mongo = EmbeddedMongo(":memory:")
    uri = await mongo.start()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "bench.soak_server", "--port", str(port), "--mongo", uri,
               "--data-dir", str(Path(tmp) / "data"), "--stats", str(stats)]
        if args.tracemalloc:
            cmd.append("--tracemalloc")
        server_log = Path(args.server_log).open("wb")  # noqa: ASYNC230, SIM115 (closed below)
        server = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            cmd, env={**os.environ, "PYTHONPATH": os.getcwd()},
            stdout=server_log, stderr=subprocess.STDOUT,
        )
        try:
            await asyncio.to_thread(wait_port, port, 120, server)
            return await drive(args, f"http://127.0.0.1:{port}", server, stats)
        finally:
            server.terminate()
            server.wait(30)
            server_log.close()
            await mongo.stop()


async def drive(
    args: argparse.Namespace, url: str, server: subprocess.Popen[bytes], stats: Path
) -> int:
    # tracemalloc makes the server several times slower: give acks longer.
    soak = Soak(url, args.users, args.rooms, args.seed, 180 if args.tracemalloc else 30)
    seats = await soak.setup()
    tasks = [asyncio.create_task(soak.user(p, r)) for p, r in seats]
    started = time.monotonic()
    samples: list[tuple[float, dict[str, Any]]] = []
    try:
        await asyncio.sleep(args.warmup)
        end = started + args.minutes * 60
        while time.monotonic() < end:
            report = await asyncio.to_thread(sample, server, stats)
            at = time.monotonic() - started
            samples.append((at, report))
            print(f"t={at:5.0f}s rss={report['rss_mb']:7.1f} MB blocks={report['blocks']} "
                  f"traced={report['traced_mb']:.2f} MB  questions={soak.counts['questions']} "
                  f"messages={soak.counts['messages']} stops={soak.counts['stops']} "
                  f"reconnects={soak.counts['reconnects']}", flush=True)
            for line in report["top"][:6]:
                print("    ", line)
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                raise RuntimeError(f"a user failed: {failed[0].exception()!r}")
            await asyncio.sleep(min(args.interval, max(0.0, end - time.monotonic())))
    finally:
        soak.stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    if len(samples) < 6:
        print("too few samples: run longer than the warm-up")
        return 1
    # The lowest value of the first and of the last third: RSS swings with the load (the
    # embedder mallocs and frees per batch); a leak moves the floor.
    third = max(1, len(samples) // 3)
    minutes = (samples[-1][0] - samples[0][0]) / 60
    failed = False
    for key, limit, unit in (("rss_mb", args.max_growth_mb, "MB"),
                             ("blocks", args.max_block_growth, "%")):
        first = min(s[key] for _, s in samples[:third])
        last = min(s[key] for _, s in samples[-third:])
        growth = last - first if unit == "MB" else 100 * (last - first) / first
        ok = growth <= limit
        failed |= not ok
        print(f"{key}: {first} -> {last} after warm-up ({growth:+.1f} {unit} over "
              f"{minutes:.1f} min; limit {limit} {unit}) {'ok' if ok else 'GROWING'}")
    print("counts:", dict(sorted(soak.counts.items())))
    if server.poll() is not None:
        print("the server exited")
        return 1
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--rooms", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--max-growth-mb", type=float, default=40.0,
                        help="RSS growth allowed after warm-up")
    parser.add_argument("--max-block-growth", type=float, default=3.0,
                        help="growth of Python's allocated blocks allowed, in percent")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--server-log", default="soak-server.log",
                        help="where the server's own output goes")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
