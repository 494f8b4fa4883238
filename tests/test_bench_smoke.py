"""`make bench` in miniature: every process starts, every scenario runs, every ack is OK.

The figures of a few-second run on a busy machine mean nothing; the goals are checked
by `make bench` itself (bench/RESULTS.md), never here.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def test_bench_smoke_runs_every_scenario(mongo_uri: str, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), "--mongo-uri", mongo_uri,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    results = out.read_text()
    assert "| persisted room message" in results
    assert "| room message fan-out" in results
    assert "| time to first token" in results
    # Every message was accepted: a refused one would not be a measured one.
    assert results.count(", 0 refused") == 2, results
    assert "bare python-socketio" in results
    # The capacity scenarios ran too (50 idle sockets, a 20 MiB upload), every socket alive.
    assert "| idle authenticated connections" in results
    assert "50 alive)" in results
    assert "| idle CPU with 50 sockets" in results
    assert "| upload of a 20 MiB chat file" in results
