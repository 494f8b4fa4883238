"""A zero-latency OpenAI-compatible provider for the benchmark (its own process).

    python -m bench.stub_llm --port P [--tokens N] [--interval S]

POST /v1/chat/completions streams the first token at once, then N-1 more (one every
`interval` seconds, 0 = as fast as it can), then the finish chunk, usage and [DONE].
Prints 'READY <pid>' when listening; exits when its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import orjson
from aiohttp import web


def make_app(tokens: int, interval: float) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", "bench")}

        async def send(choices: list[dict[str, object]], **extra: object) -> None:
            await resp.write(b"data: " + orjson.dumps({**base, "choices": choices, **extra})
                             + b"\n\n")

        for i in range(tokens):
            delta: dict[str, object] = {"content": f"tok{i} "}
            if i == 0:
                delta["role"] = "assistant"
            await send([{"index": 0, "delta": delta, "finish_reason": None}])
            if interval:
                await asyncio.sleep(interval)
        await send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        await send([], usage={"prompt_tokens": 20, "completion_tokens": tokens,
                              "total_tokens": 20 + tokens})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--interval", type=float, default=0.0)
    args = p.parse_args()
    runner = web.AppRunner(make_app(args.tokens, args.interval), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print("READY", os.getpid(), flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_stdin() -> None:
        if not sys.stdin.read(1) and not stop.done():
            stop.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    await stop
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
