"""What the model <-> tool loop adds to a reply, against zero-latency loopback stubs.

    .venv/bin/python -m bench.tools [--replies 50]

Each reply is two model calls through the real OpenAI-compatible provider (the first asks
for one tool call whose arguments stream in pieces, the second answers) and one call of
an in-process tool: the time per reply is the loop's own cost plus two HTTP streams.
The same number of plain two-call streams is timed as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from app.config_features import ToolsSettings
from app.llm.base import ChatMessage, ChatParams
from app.llm.openai_compat import OpenAICompatProvider
from app.tools.base import ToolContext
from app.tools.loop import run_tool_loop
from app.tools.registry import ToolRegistry
from tests.llm_tool_stubs import Call, OpenAIToolStub, Turn, split_args
from tests.test_tool_loop import ROOM, Box
from tests.tool_stubs import serve

PROMPT = [ChatMessage("system", "S"), ChatMessage("user", "k1?")]


async def main(replies: int) -> None:
    stub = OpenAIToolStub()
    async with serve(stub.app()) as url:
        provider = OpenAICompatProvider("stub", f"{url}/v1", "k", max_retries=0)
        registry = ToolRegistry(ToolsSettings(), [Box()])
        tools = registry.for_room(["lookup"], ToolContext(ROOM, "u1"))
        looped: list[float] = []
        plain: list[float] = []
        for _ in range(replies):
            stub.turns += [Turn(calls=(Call("c1", "lookup", split_args({"key": "k1"})),)),
                           Turn(text=("k1 is ", "v."))]
            started = time.perf_counter()
            async for _event in run_tool_loop(provider, "m", PROMPT, ChatParams(), tools, 5):
                pass
            looped.append((time.perf_counter() - started) * 1000)
            stub.turns += [Turn(text=("a",)), Turn(text=("b",))]
            started = time.perf_counter()
            for _call in range(2):
                async for _event in provider.stream_chat(PROMPT, "m", ChatParams()):
                    pass
            plain.append((time.perf_counter() - started) * 1000)
        await provider.close()
    print(f"replies: {replies}")
    print(f"tool reply (2 model calls + 1 tool call): p50 {statistics.median(looped):.1f} ms")
    print(f"two plain model calls:                    p50 {statistics.median(plain):.1f} ms")
    print(f"loop overhead per reply:                  "
          f"{statistics.median(looped) - statistics.median(plain):.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--replies", type=int, default=50)
    asyncio.run(main(parser.parse_args().replies))
