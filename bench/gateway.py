"""What the `/v1` gateway and personal API keys cost per request, on loopback.

    .venv/bin/python -m bench.gateway [--requests 300]

Starts SecantusDB and Parlour (scripted provider: 12 deltas, no delay, no network) and
times, one request in flight at a time:
- `GET /v1/models` with the JWT access token, then with a `plr_` key (cached after the
  first use): the key check's own cost;
- `POST /v1/chat/completions`, whole and streamed (with usage), with the key: admission,
  the provider call, the OpenAI shapes and the usage record.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from app.config import load_settings
from storage.embedded_mongo import EmbeddedMongo
from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider

CHAT = {"model": "scripted:fixed", "messages": [{"role": "user", "content": "hi"}]}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def timed(server: Parlour, method: str, path: str, token: str, n: int,
                json: object = None) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    out: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        async with server.http.request(method, server.url + path, headers=headers,
                                       json=json) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append((time.perf_counter() - start) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    return (f"{name:<46} p50 {statistics.median(ms):6.2f} ms   p95 {pct(ms, 95):6.2f} ms"
            f"   {len(ms) / (sum(ms) / 1000):7.0f} req/s")


async def main(requests: int) -> None:
    mongo = EmbeddedMongo(":memory:")
    uri = await mongo.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, data_dir=str(Path(tmp)), mongo__uri=uri,
            mongo__database=f"b{uuid.uuid4().hex[:8]}",
            auth__jwt_secret="bench-secret-0123456789-0123456789", llm__local_enabled=False,
            llm__default_model="scripted:fixed", limits__messages_per_minute=100_000,
            server__log_level="WARNING", server__log_format="text",
        )
        server = await start_parlour(settings, providers={"scripted": ScriptedProvider()})
        try:
            user = await server.signup()
            _, created = await server.request("POST", "/api/v1/keys", user, json={"name": "b"})
            key = created["key"]
            await timed(server, "GET", "/v1/models", key, 20)  # warm up
            print(line("GET /v1/models, access token", await timed(
                server, "GET", "/v1/models", user.token, requests)))
            print(line("GET /v1/models, plr_ key", await timed(
                server, "GET", "/v1/models", key, requests)))
            print(line("POST /v1/chat/completions, whole, plr_ key", await timed(
                server, "POST", "/v1/chat/completions", key, requests, CHAT)))
            streamed = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
            print(line("POST /v1/chat/completions, streamed, plr_ key", await timed(
                server, "POST", "/v1/chat/completions", key, requests, streamed)))
        finally:
            await server.close()
    await mongo.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args().requests))
