"""The load generator: its own process, raw Engine.IO clients (bench/eio.py).

    python -m bench.loadgen '<json spec>'

Prints one JSON line with the results. The spec names the scenario, the target
(`parlour` or `bare`), the servers' URLs and pids (their CPU time is read from
/proc/<pid>/stat around the measured window), and the sizes. Every ack is checked:
only acknowledged, accepted messages are counted; refusals are reported.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from typing import Any

import aiohttp

from bench.eio import EioClient, run_json_main
from bench.probe import Probe

REALTIME = "/assistant/realtime"
TICK = os.sysconf("SC_CLK_TCK")
_names = itertools.count()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sys_seconds(pid: int) -> float:
    """stime alone: the kernel's share (socket writes on loopback land here)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[12]) / TICK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Window:
    """CPU of the servers and a counter between start() and stop()."""

    def __init__(self, pids: list[int], mark: str | None = None,
                 others: list[int] | None = None, redis: list[int] | None = None) -> None:
        self.pids = pids
        self.mark = mark  # a file created when the window opens (to attach a profiler)
        self.others = others or []  # reported beside, not counted (the database)
        self.redis = redis or []  # likewise (redis-server, cross-node run)
        self.by_pid: list[float] = []
        self.redis_cpu = 0.0
        self.self_cpu = 0.0  # the load generator's own CPU (is it the bottleneck?)
        self.t0 = self.t1 = 0.0
        self.cpu = 0.0
        self.other_cpu = 0.0
        self.sys = 0.0
        self.wall = 0.0
        self.open = False

    def start(self) -> None:
        if self.mark:
            with open(self.mark, "w") as f:
                f.write("open")
        self._cpu0 = sum(cpu_seconds(p) for p in self.pids)
        self._sys0 = sum(sys_seconds(p) for p in self.pids)
        self._other0 = sum(cpu_seconds(p) for p in self.others)
        self._by_pid0 = [cpu_seconds(p) for p in self.pids]
        self._redis0 = sum(cpu_seconds(p) for p in self.redis)
        self._self0 = time.process_time()
        self.t0 = time.perf_counter()
        self.open = True

    def stop(self) -> None:
        self.open = False
        self.cpu = sum(cpu_seconds(p) for p in self.pids) - self._cpu0
        self.sys = sum(sys_seconds(p) for p in self.pids) - self._sys0
        self.other_cpu = sum(cpu_seconds(p) for p in self.others) - self._other0
        self.by_pid = [cpu_seconds(p) - c for p, c in zip(self.pids, self._by_pid0,
                                                             strict=True)]
        self.redis_cpu = sum(cpu_seconds(p) for p in self.redis) - self._redis0
        self.self_cpu = time.process_time() - self._self0
        self.t1 = time.perf_counter()
        self.wall = self.t1 - self.t0


class Target:
    """How to set a scenario up on Parlour or on the bare server."""

    def __init__(self, session: aiohttp.ClientSession, spec: dict[str, Any]) -> None:
        self.session = session
        self.kind: str = spec["target"]
        self.urls: list[str] = spec["urls"]
        self.bare = self.kind == "bare"
        self._setup = asyncio.Semaphore(8)

    async def users(self, n: int) -> list[dict[str, Any]]:
        """n accounts, made a few at a time (signup hashes a password)."""
        async def one() -> dict[str, Any]:
            async with self._setup:
                return await self.user()
        return list(await asyncio.gather(*(one() for _ in range(n))))

    async def user(self) -> dict[str, Any]:
        """A new account on Parlour (REST signup); a placeholder on the bare server."""
        n = next(_names)
        if self.bare:
            return {"email": f"u{n}", "token": ""}
        email = f"bench{n}.{os.getpid()}@example.com"
        async with self.session.post(self.urls[0] + "/api/v1/auth/signup", json={
            "email": email, "password": "bench password 1", "name": f"bench{n}",
        }) as resp:
            data = await resp.json()
            assert resp.status == 201, data
        return {"email": email, "token": data["access_token"]}

    async def client(self, user: dict[str, Any], node: int = 0) -> EioClient:
        url = self.urls[node]
        client = (EioClient(self.session, url, "/") if self.bare
                  else EioClient(self.session, url, REALTIME, {"token": user["token"]}))
        await client.connect()
        return client

    async def room(self, owner: EioClient, **fields: Any) -> str:
        if self.bare:
            room = f"r{next(_names)}"
            await owner.call("join", room)
            return room
        ack = await owner.call("create_room", {"title": "bench", **fields})
        assert ack["ok"], ack
        return str(ack["data"]["room"]["room_id"])

    async def add(self, owner: EioClient, room: str, user: dict[str, Any],
                  client: EioClient) -> None:
        if self.bare:
            await client.call("join", room)
            return
        ack = await owner.call("invite", {"room_id": room, "email": user["email"]})
        assert ack["ok"], ack
        ack = await client.call("join_room", {"room_id": room})
        assert ack["ok"], ack

    async def send(self, client: EioClient, room: str, content: str) -> bool:
        """One message, acknowledged; whether it was accepted."""
        if self.bare:
            ack = await client.call("bcast" if room else "echo_ack",
                                    {"room": room, "content": content})
            return ack is None or ack.get("content") == content
        ack = await client.call("send_message", {"room_id": room, "content": content})
        return bool(ack.get("ok"))

    @property
    def message_event(self) -> str:
        return "bcast" if self.bare else "message_received"


async def senders_loop(target: Target, pairs: list[tuple[EioClient, str]], window: Window,
                       warmup: float, duration: float,
                       sent_at: dict[str, float] | None = None,
                       rate: float | None = None) -> dict[str, Any]:
    """Each (client, room) keeps one message in flight; counts acks inside the window.

    `rate`: at most this many messages per second in all (paced), else as fast as acked.
    """
    stats = {"ok": 0, "refused": 0, "latency": []}
    stop_at = time.perf_counter() + warmup + duration
    seq = itertools.count()

    interval = len(pairs) / rate if rate else 0.0

    async def one(client: EioClient, room: str) -> None:
        next_at = time.perf_counter()
        while time.perf_counter() < stop_at:
            if interval:
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            content = f"m{next(seq)} the quick brown fox jumps over the lazy dog"
            t0 = time.perf_counter()
            if sent_at is not None:
                sent_at[content] = t0
            accepted = await target.send(client, room, content)
            if not window.open:
                continue
            if accepted:
                stats["ok"] += 1
                stats["latency"].append(time.perf_counter() - t0)
            else:
                stats["refused"] += 1

    async def clock() -> None:
        await asyncio.sleep(warmup)
        window.start()
        await asyncio.sleep(duration)
        window.stop()

    await asyncio.gather(clock(), *(one(c, r) for c, r in pairs))
    return stats


async def persist(target: Target, spec: dict[str, Any]) -> dict[str, Any]:
    """N connections, each alone in its room, one acknowledged message in flight each."""
    async def pair(user: dict[str, Any]) -> tuple[EioClient, str]:
        client = await target.client(user)
        room = "" if target.bare else await target.room(client, assistant_mode="off")
        return client, room

    users = await target.users(spec["connections"])
    pairs = list(await asyncio.gather(*(pair(user) for user in users)))
    window = Window(spec["pids"], spec.get("mark"), spec.get("db_pids"))
    stats = await senders_loop(target, pairs, window, spec["warmup"], spec["duration"],
                               rate=spec.get("rate"))
    for client, _ in pairs:
        await client.close()
    ok = stats["ok"]
    return {"messages": ok, "refused": stats["refused"], "cpu_s": window.cpu,
            "sys_s": window.sys, "db_cpu_s": window.other_cpu,
            "wall_s": window.wall, "cpu_per_msg_us": window.cpu / ok * 1e6 if ok else None,
            "msgs_per_s": ok / window.wall, "p50_ms": pct(stats["latency"], 50) * 1000,
            "p99_ms": pct(stats["latency"], 99) * 1000}


async def fanout(target: Target, spec: dict[str, Any]) -> dict[str, Any]:
    """One room of M members; S of them send, one message in flight each; deliveries counted.

    With two URLs, the senders are on the first node and the other members on the second
    (cross-node). With `probes`, two of the M members (not senders) live in their own idle
    process (bench/probe.py): one on the first node, one on the last. Their arrival times
    give the latency send → member on the last node, and the hop alone: arrival on the
    last node minus arrival of the same message on the senders' node.
    """
    members, senders = spec["members"], spec["senders"]
    nodes = len(target.urls)
    probes = 2 if spec.get("probes") else 0
    users = await target.users(members)
    owner = await target.client(users[0], 0)
    room = await target.room(owner, assistant_mode="off")

    async def member(i: int) -> EioClient:
        node = 0 if (nodes == 1 or i < senders) else 1
        client = await target.client(users[i], node)
        async with target._setup:
            await target.add(owner, room, users[i], client)
        return client

    clients = [owner, *await asyncio.gather(*(member(i) for i in range(1, members - probes)))]
    probe = None
    if probes:
        for user in users[members - probes:]:
            ack = await owner.call("invite", {"room_id": room, "email": user["email"]})
            assert ack["ok"], ack
        probe = await Probe.start({"room": room, "redis": spec.get("redis"), "members": [
            {"url": target.urls[node], "token": user["token"]}
            for node, user in zip((0, nodes - 1), users[members - probes:], strict=True)]})
    sent_at: dict[str, float] = {}
    window = Window(spec["pids"], spec.get("mark"), spec.get("db_pids"),
                    spec.get("redis_pids"))
    event = target.message_event
    counts0: list[int] = []

    async def tally() -> None:
        await asyncio.sleep(spec["warmup"])
        counts0.append(sum(c.counts[event] for c in clients))
        await asyncio.sleep(spec["duration"])
        counts0.append(sum(c.counts[event] for c in clients))

    results = await asyncio.gather(
        senders_loop(target, [(c, room) for c in clients[:senders]], window,
                     spec["warmup"], spec["duration"], sent_at if probe else None),
        tally(),
    )
    stats = results[0]
    await asyncio.sleep(0.5)  # let the last deliveries land before closing
    arrivals = await probe.finish() if probe else None
    for client in clients:
        await client.close()
    deliveries = counts0[1] - counts0[0]
    out: dict[str, Any] = {
        "messages": stats["ok"], "refused": stats["refused"], "members": members,
        "cpu_s": window.cpu, "wall_s": window.wall, "sys_s": window.sys,
        "db_cpu_s": window.other_cpu, "node_cpu_s": window.by_pid,
        "loadgen_cpu_s": window.self_cpu,
        "ack_p50_ms": pct(stats["latency"], 50) * 1000,
        "ack_p99_ms": pct(stats["latency"], 99) * 1000,
        "msgs_per_s": stats["ok"] / window.wall if window.wall else None,
    }
    if arrivals is not None:
        local, far = (m["first"] for m in arrivals["members"])
        inside = [(c, t) for c, t in far.items() if window.t0 <= t <= window.t1]
        deliveries += len(inside) + sum(
            window.t0 <= t <= window.t1 for t in local.values())
        e2e = [t - sent_at[c] for c, t in inside if c in sent_at]
        hop = [t - local[c] for c, t in inside if c in local]
        published = arrivals["published"]
        after_publish = [t - published[c] for c, t in inside if c in published]
        missing = sum(1 for c, t in local.items() if c not in far and t < window.t1 - 1)
        out.update({
            "redis_cpu_s": window.redis_cpu, "probe_cpu_s": arrivals["cpu_s"],
            "e2e_p50_ms": pct(e2e, 50) * 1000, "e2e_p99_ms": pct(e2e, 99) * 1000,
            "hop_p50_ms": pct(hop, 50) * 1000, "hop_p99_ms": pct(hop, 99) * 1000,
            "hop_max_ms": max(hop, default=float("nan")) * 1000,
            # arrival on the last node minus the publication reaching a Redis subscriber:
            # the receiving node's share (its listener, encode, socket writes)
            "after_publish_p50_ms": pct(after_publish, 50) * 1000,
            "after_publish_p99_ms": pct(after_publish, 99) * 1000,
            "probe_samples": len(hop), "probe_missing": missing,
            "probe_repeats": sum(m["repeats"] for m in arrivals["members"]),
            # Little's law: with S messages always in flight, the time a message waits is
            # S / throughput, whatever carries it.
            "queueing_ms": senders / (stats["ok"] / window.wall) * 1000
            if stats["ok"] else None,
        })
    out["deliveries"] = deliveries
    out["cpu_per_delivery_us"] = window.cpu / deliveries * 1e6 if deliveries else None
    out["deliveries_per_cpu_s"] = deliveries / window.cpu if window.cpu else None
    return out


async def stub_first_token(session: aiohttp.ClientSession, base: str) -> float:
    """The stub provider's own time from request to its first content chunk."""
    t0 = time.perf_counter()
    async with session.post(base + "/chat/completions", json={
        "model": "bench", "stream": True, "messages": [{"role": "user", "content": "hi"}],
    }) as resp:
        async for line in resp.content:
            if b'"content":"' in line and b'"content":""' not in line:
                first = time.perf_counter() - t0
                async for _ in resp.content:
                    pass
                return first
    raise RuntimeError("the stub sent no content")


async def ttft(target: Target, spec: dict[str, Any]) -> dict[str, Any]:
    """send_message → first assistant_delta, one-member room, one reply at a time."""
    user = await target.user()
    client = await target.client(user)
    ack = await client.call("create_room", {"title": "ttft", "model": spec["model"],
                                            "assistant_mode": "always"})
    assert ack["ok"], ack
    room = ack["data"]["room"]["room_id"]
    firsts: list[float] = []
    for i in range(spec["warmup_replies"] + spec["replies"]):
        delta = asyncio.ensure_future(client.next_event("assistant_delta"))
        done = asyncio.ensure_future(client.next_event("assistant_done"))
        t0 = time.perf_counter()
        ack = await client.call("send_message", {"room_id": room, "content": f"question {i}"})
        assert ack["ok"], ack
        await delta
        first = time.perf_counter() - t0
        await done
        if i >= spec["warmup_replies"]:
            firsts.append(first)
    await client.close()
    stub = [await stub_first_token(target.session, spec["stub_url"]) for _ in range(20)]
    stub_p50 = statistics.median(stub)
    return {"replies": len(firsts), "p50_ms": pct(firsts, 50) * 1000,
            "p99_ms": pct(firsts, 99) * 1000, "stub_p50_ms": stub_p50 * 1000,
            "overhead_p50_ms": (pct(firsts, 50) - stub_p50) * 1000}


SCENARIOS = {"persist": persist, "fanout": fanout, "ttft": ttft}


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await SCENARIOS[spec["scenario"]](Target(session, spec), spec)


if __name__ == "__main__":
    run_json_main(main)
