"""The capacity scenarios of `make bench`: idle connections and a large upload (SPEC §10).

Each server is started fresh for its scenario (so its RSS starts from the same place)
and stopped after it; the load runs in its own process (bench/idle.py, bench/upload.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.idle import raise_fd_limit
from bench.run import (
    ROOT,
    Proc,
    Row,
    Sizes,
    Stack,
    free_port,
    parlour_config,
    start_bare,
    start_parlour,
)

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
    # The servers started next inherit it: each holds n sockets (hard limit permitting).
    raise_fd_limit(n + 1024)
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
    """One file of `sizes.upload_mb` MiB to a chat: into the local blob store (the
    default), then into S3 (moto) when moto_server is installed and the file is large."""
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    moto = Path(sys.executable).with_name("moto_server")
    stores = ["local"] + (["s3"] if moto.exists() and sizes.upload_mb >= 256 else [])
    for store in stores:
        config = parlour_config(stack.tmp, f"parlour-upload-{store}", mongo_uri, stub_url, None)
        moto_proc = start_moto(stack, moto) if store == "s3" else None
        if moto_proc is not None:
            config.write_text(config.read_text() + S3_BLOBS.format(endpoint=moto_proc.url))
        with env_vars(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"):
            proc = start_parlour(stack, f"parlour-upload-{store}", config)
        try:
            result = run_child("bench.upload", {
                "target": "parlour", "urls": [proc.url], "pids": [proc.pid],
                "mb": sizes.upload_mb})
        finally:
            stack.stop(proc)
            if moto_proc is not None:
                stack.stop(moto_proc)  # it holds the file in memory
        log(f"  upload   {store:8s} {json.dumps(result)}")
        raw[store] = result
        growth = result["rss_growth"] / MIB
        size = f"{sizes.upload_mb / 1024:g} GiB" if sizes.upload_mb >= 1024 else (
            f"{sizes.upload_mb} MiB")
        where = ("local blob store: the default" if store == "local"
                 else "S3 multipart upload to moto_server, 8 MiB parts")
        rows.append(Row(
            f"upload of a {size} chat file over REST (multipart, {where}), server RSS growth",
            f"+{growth:.1f} MB peak ({result['mb_per_s']:.0f} MB/s, "
            f"{result['server_cpu_s']:.1f} s server CPU)",
            "—", "—", f"≤ {UPLOAD_MB_GOAL:g} MB", growth <= UPLOAD_MB_GOAL))
    return rows, {"upload": raw}


S3_BLOBS = """
[blobs]
backend = "s3"
s3_endpoint_url = "{endpoint}"
s3_path_style = true
s3_bucket = "bench"
s3_create_bucket = true
"""


def start_moto(stack: Stack, binary: Path) -> Proc:
    """moto's S3 server on a free port (as the tests run it)."""
    port = free_port()
    with env_vars(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"):
        return stack.spawn("moto", [str(binary), "-H", "127.0.0.1", "-p", str(port)], port,
                           f"http://127.0.0.1:{port}")


@contextlib.contextmanager
def env_vars(**values: str) -> Iterator[None]:
    """`values` in os.environ while a child is started (its environment is copied)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
