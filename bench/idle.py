"""Idle connections: the load side, its own process (SPEC §10).

    python -m bench.idle '<json spec>'

Opens `connections` sockets to one server in batches of `batch` at a time (Parlour:
authenticated, to /assistant/realtime with `auth.token`, `per_user` sockets per account;
bare: the default namespace), lets them settle, and reads the server's RSS before and
after and its CPU over an idle window of `idle` seconds (the sockets only answer pings).
Prints one JSON line. With `signal_server`, the server gets SIGUSR1 before the sockets
open and after they settle (a wrapper that snapshots tracemalloc on it shows what each
socket holds).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from typing import Any

import aiohttp

from bench.eio import EioClient, run_json_main
from bench.loadgen import Target, cpu_seconds, rss_bytes


def raise_fd_limit(wanted: int) -> int:
    """Lift the soft limit on open files towards `wanted` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def settle(pid: int, quiet: float = 1.0, longest: float = 20.0) -> None:
    """Wait until the server's CPU is idle for `quiet` seconds (its accept work done)."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        cpu0 = cpu_seconds(pid)
        await asyncio.sleep(quiet)
        if cpu_seconds(pid) - cpu0 <= 0.3 * quiet:  # 10,000 idle sockets: 10-20 %
            return


async def idle(session: aiohttp.ClientSession, spec: dict[str, Any]) -> dict[str, Any]:
    n, pid = spec["connections"], spec["pids"][0]
    target = Target(session, spec)
    per_user = spec.get("per_user", n)
    users = await target.users(max(1, -(-n // per_user)))
    await settle(pid, 0.5)
    rss0 = rss_bytes(pid)
    if spec.get("signal_server"):  # e.g. a tracemalloc wrapper snapshots the heap
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(3)
    clients: list[EioClient] = []
    gate = asyncio.Semaphore(spec.get("batch", 100))

    async def one(i: int) -> None:
        async with gate:
            clients.append(await target.client(users[i // per_user]))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    connect_s = time.perf_counter() - t0
    await settle(pid, spec.get("settle", 2.0))
    rss1 = rss_bytes(pid)
    if spec.get("signal_server"):
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(15)
    pings0 = sum(c.pings for c in clients)
    cpu0, w0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(spec["idle"])
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - w0
    rss2 = rss_bytes(pid)
    alive = sum(1 for c in clients if not c.closed)
    pings = sum(c.pings for c in clients) - pings0  # inside the window
    await asyncio.gather(*(c.close() for c in clients))
    return {
        "connections": n, "alive": alive, "pings": pings, "users": len(users),
        "connect_s": connect_s, "rss_before": rss0, "rss_after": rss1, "rss_idle_end": rss2,
        "bytes_per_conn": (rss1 - rss0) / n, "idle_cpu_s": cpu, "idle_wall_s": wall,
        "idle_cpu_pct": cpu / wall * 100,
    }


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    raise_fd_limit(spec["connections"] + 1024)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await idle(session, spec)


if __name__ == "__main__":
    run_json_main(main)
