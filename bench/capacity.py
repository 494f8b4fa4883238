"""The capacity scenarios of `make bench`: idle connections and a large upload (SPEC §10).

Each server is started fresh for its scenario (so its RSS starts from the same place)
and stopped after it; the load runs in its own process (bench/idle.py, bench/upload.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.run import ROOT, Row, Sizes, Stack, parlour_config, start_bare, start_parlour

KIB = 1024
MIB = 1024 * 1024
IDLE_KB_GOAL = 35.0  # KiB of server RSS per idle authenticated connection
UPLOAD_MB_GOAL = 50.0  # MiB of server RSS growth while a large upload streams
PING_INTERVAL = 25.0  # python-socketio's default, which both servers run with


def run_child(module: str, spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """`python -m <module> <spec>` in its own process; its last line as JSON."""
    out = subprocess.run(
        [sys.executable, "-m", module, json.dumps(spec)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} {spec.get('target')} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure_idle(stack: Stack, sizes: Sizes, mongo_uri: str, stub_url: str,
                 log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    """N idle sockets on Parlour (authenticated) and on bare python-socketio, one at a time."""
    n = sizes.idle_connections
    spec = {"scenario": "idle", "connections": n, "batch": 100, "per_user": 500,
            "idle": sizes.idle_seconds, "settle": 2.0}
    results: dict[str, Any] = {}
    for target in ("parlour", "bare"):
        proc = (start_parlour(stack, "parlour-idle", parlour_config(
            stack.tmp, "parlour-idle", mongo_uri, stub_url, None))
            if target == "parlour" else start_bare(stack, "bare-idle"))
        try:
            results[target] = run_child("bench.idle", {
                **spec, "target": target, "urls": [proc.url], "pids": [proc.pid]})
        finally:
            stack.stop(proc)
        log(f"  idle     {target:8s} {json.dumps(results[target])}")
    p, b = results["parlour"], results["bare"]
    p_kb, b_kb = p["bytes_per_conn"] / KIB, b["bytes_per_conn"] / KIB
    users = p["users"]
    rows = [
        Row(f"idle authenticated connections, server RSS per connection ({n:,} sockets, "
            f"{users} accounts, up to {spec['per_user']} sockets each)",
            f"{p_kb:.1f} KB (RSS {p['rss_before'] / MIB:.0f} → {p['rss_after'] / MIB:.0f} MB, "
            f"{p['alive']:,} alive)",
            f"{b_kb:.1f} KB ({b['rss_before'] / MIB:.0f} → {b['rss_after'] / MIB:.0f} MB)",
            f"{p_kb / b_kb:.2f}x" if b_kb > 0 else "—", f"≤ {IDLE_KB_GOAL:g} KB",
            p_kb <= IDLE_KB_GOAL and p["alive"] == n),
        Row(f"idle CPU with {n:,} sockets (ping interval {PING_INTERVAL:g} s, "
            f"{sizes.idle_seconds:g} s window)",
            f"{p['idle_cpu_pct']:.1f} % of a core ({p['pings']:,} pings)",
            f"{b['idle_cpu_pct']:.1f} % ({b['pings']:,} pings)",
            f"{p['idle_cpu_pct'] / b['idle_cpu_pct']:.2f}x" if b["idle_cpu_pct"] else "—",
            "≤ 1.0x", p["idle_cpu_pct"] <= b["idle_cpu_pct"] and p["alive"] == n),
    ]
    return rows, {"idle": results}


def measure_upload(stack: Stack, sizes: Sizes, mongo_uri: str, stub_url: str,
                   log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    """One file of `sizes.upload_mb` MiB to a chat, into the default (local) blob store."""
    proc = start_parlour(stack, "parlour-upload", parlour_config(
        stack.tmp, "parlour-upload", mongo_uri, stub_url, None))
    try:
        result = run_child("bench.upload", {
            "target": "parlour", "urls": [proc.url], "pids": [proc.pid],
            "mb": sizes.upload_mb})
    finally:
        stack.stop(proc)
    log(f"  upload   parlour  {json.dumps(result)}")
    growth = result["rss_growth"] / MIB
    size = f"{sizes.upload_mb / 1024:g} GiB" if sizes.upload_mb >= 1024 else (
        f"{sizes.upload_mb} MiB")
    rows = [Row(
        f"upload of a {size} chat file over REST (multipart, local blob store: the default), "
        "server RSS growth",
        f"+{growth:.1f} MB peak ({result['mb_per_s']:.0f} MB/s, "
        f"{result['server_cpu_s']:.1f} s server CPU)",
        "—", "—", f"≤ {UPLOAD_MB_GOAL:g} MB", growth <= UPLOAD_MB_GOAL)]
    return rows, {"upload": result}
