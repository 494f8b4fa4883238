"""The server under soak: Parlour with a streaming stub provider, reporting its memory.

    python -m bench.soak_server --port P --mongo URI --data-dir DIR --stats FILE

Runs in its own process (so the load generator's memory is not counted). On SIGUSR1 it
collects garbage and writes `{"rss_mb", "blocks", "traced_mb", "top"}` to FILE
(`blocks`: Python's allocated memory blocks, a cheap and exact count of its heap) (`top`: the
allocation sites that grew most since the previous report, from tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

from app.config import load_settings
from app.llm.base import ChatMessage, ChatParams, StreamEnd, StreamEvent, TextDelta, TokenUsage
from app.main import create_app

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
         "the", "assistant", "keeps", "talking")


class StreamingStub:
    """A provider that streams a long answer with small pauses and keeps nothing."""

    name = "stub"

    @property
    def available(self) -> bool:
        return True

    async def stream_chat(
        self, messages: Sequence[ChatMessage], model: str, params: ChatParams
    ) -> AsyncIterator[StreamEvent]:
        count = 60
        for i in range(count):
            await asyncio.sleep(0.03)
            yield TextDelta(f"{WORDS[i % len(WORDS)]}{i} ")
        prompt = sum(len(m.content) for m in messages) // 4 + 1
        yield StreamEnd(TokenUsage(prompt, count), "stop")

    async def close(self) -> None:
        return None


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Reporter:
    """Writes memory reports on SIGUSR1."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._last: tracemalloc.Snapshot | None = None

    def report(self) -> None:
        gc.collect()
        top: list[str] = []
        traced = 0.0
        if tracemalloc.is_tracing():
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            if self._last is not None:
                stats = snapshot.compare_to(self._last, "lineno")
                top = [str(s) for s in stats[:12]]
            self._last = snapshot
        data = {"rss_mb": round(rss_mb(), 1), "traced_mb": round(traced, 2), "top": top,
                "blocks": sys.getallocatedblocks()}
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongo", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(1)
    settings = load_settings(
        None, data_dir=args.data_dir, mongo__uri=args.mongo, mongo__database="soak",
        auth__jwt_secret="soak-secret-0123456789-0123456789-0123",
        llm__local_enabled=False, llm__default_model="stub:stream",
        server__log_level="WARNING", server__log_format="text",
    )
    app = create_app(settings, providers={"stub": StreamingStub()})
    reporter = Reporter(Path(args.stats))

    async def on_startup(app: web.Application) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, reporter.report)

    app.on_startup.append(on_startup)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None,
                shutdown_timeout=2)


if __name__ == "__main__":
    main()
