"""Time from `stream_chat` to the first TextDelta, against the zero-latency stub.

    .venv/bin/python -m bench.provider_first_token [--calls 40]

Starts `bench.stub_llm` as its own process on a free port and times the OpenAI-compatible
provider's own overhead (request, response headers, first SSE chunk parsed).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time

from app.llm.base import ChatMessage, ChatParams, TextDelta
from app.llm.openai_compat import OpenAICompatProvider

PROMPT = [ChatMessage("system", "You are helpful."), ChatMessage("user", "Say hi.")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def main(calls: int) -> None:
    port = free_port()
    stub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.stub_llm", "--port", str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert stub.stdout is not None and stub.stdin is not None
    await asyncio.wait_for(stub.stdout.readline(), 30)
    provider = OpenAICompatProvider("stub", f"http://127.0.0.1:{port}/v1", "k", max_retries=0)
    firsts: list[float] = []
    try:
        for index in range(calls + 5):  # the first five warm up the connection
            started = time.perf_counter()
            first: float | None = None
            async for event in provider.stream_chat(PROMPT, "m", ChatParams()):
                if first is None and isinstance(event, TextDelta):
                    first = time.perf_counter() - started
            if index >= 5 and first is not None:
                firsts.append(first * 1000)
    finally:
        await provider.close()
        stub.stdin.close()
        await stub.wait()
    firsts.sort()
    print(f"calls: {len(firsts)}  first token p50 {statistics.median(firsts):.2f} ms  "
          f"p90 {firsts[int(len(firsts) * 0.9) - 1]:.2f} ms  min {firsts[0]:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    asyncio.run(main(parser.parse_args().calls))
