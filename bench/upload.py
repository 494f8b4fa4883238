"""A large upload: the client side, its own process (SPEC §10).

    python -m bench.upload '<json spec>'

Signs up, creates a chat over REST and uploads one file of `mb` MiB to
`/api/v1/chat/{id}/upload` as multipart/form-data with a Content-Length, the body made
by a generator (one random MiB sent again and again: nothing the size of the file is
held or written on the client's side). The server's RSS is sampled every 20 ms from
/proc while the body streams; prints one JSON line with the rate and the RSS growth.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from bench.loadgen import Target, cpu_seconds, rss_bytes

MIB = 1024 * 1024
BOUNDARY = "parlour-bench-" + os.urandom(12).hex()
FILENAME = "bench-upload.dat"  # a binary type a chat stores without reading it


def body_parts(mb: int) -> tuple[bytes, bytes, int]:
    """The multipart head and tail around the file's bytes, and the whole body's length."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"{FILENAME}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail, len(head) + mb * MIB + len(tail)


async def body(mb: int) -> AsyncIterator[bytes]:
    head, tail, _ = body_parts(mb)
    block = os.urandom(MIB)
    yield head
    for _ in range(mb):
        yield block
    yield tail


async def upload(session: aiohttp.ClientSession, spec: dict[str, Any]) -> dict[str, Any]:
    pid, url, mb = spec["pids"][0], spec["urls"][0], spec["mb"]
    user = await Target(session, spec).user()
    auth = {"Authorization": f"Bearer {user['token']}"}
    async with session.post(url + "/api/v1/chat", json={"title": "upload"},
                            headers=auth) as resp:
        chat = await resp.json()
        assert resp.status == 201, chat
    chat_id = chat["chat_id"]
    await asyncio.sleep(0.5)
    rss0 = rss_bytes(pid)
    peak = rss0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    _, _, length = body_parts(mb)
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    async with session.post(
        f"{url}/api/v1/chat/{chat_id}/upload", data=body(mb),
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                 "Content-Length": str(length)},
    ) as resp:
        stored = await resp.json()
        status = resp.status
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    sampling = False
    await sampler
    peak = max(peak, rss_bytes(pid))
    assert status == 201, stored
    record = stored["files"][0]
    assert record["size"] == mb * MIB, record
    async with session.delete(f"{url}/api/v1/chat/{chat_id}/files/{record['file_id']}",
                              headers=auth) as resp:
        assert resp.status == 204, await resp.text()
    return {"mb": mb, "wall_s": wall, "mb_per_s": mb / wall, "server_cpu_s": cpu,
            "rss_before": rss0, "rss_peak": peak, "rss_growth": peak - rss0,
            "content_type": record["content_type"], "status": record["status"]}


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await upload(session, spec)


if __name__ == "__main__":
    result = asyncio.run(main(orjson.loads(sys.argv[1])))
    print(orjson.dumps(result).decode(), flush=True)
