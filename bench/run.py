"""`make bench`: Parlour against bare python-socketio, same load, same run (SPEC §10).

    .venv/bin/python -m bench.run [--quick | --smoke] [--out bench/RESULTS.md]

Every server is its own process: Parlour exactly as `parlour serve` runs it (uvloop,
its own config file with test-friendly limits: the per-user message limit lifted, the
assistant off except in the time-to-first-token rooms), the bare baseline
(bare_sio.py --kind sio --uvloop --json orjson), SecantusDB, redis-server and a
zero-latency OpenAI-compatible stub. The load comes from bench/loadgen.py in another
process (raw Engine.IO frames). Server CPU is read from /proc/<pid>/stat around each
measured window; figures are printed as ratios to the bare server with the absolute
numbers beside them, and written to bench/RESULTS.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.embedded_mongo import _daemon_command

ROOT = Path(__file__).resolve().parent.parent
BARE_CANDIDATES = (ROOT.parent / "shared" / "perf" / "bare_sio.py",
                   Path("/work/shared/perf/bare_sio.py"),
                   ROOT / "bench" / "bare_sio.py")


def bare_script() -> Path:
    """The shared baseline server; bench/bare_sio.py is a verbatim copy of it."""
    override = os.environ.get("PARLOUR_BENCH_BARE")
    if override:
        return Path(override)
    return next(p for p in BARE_CANDIDATES if p.exists())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    """A child process, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not start ({text!r} not seen):\n{tail}")

    def wait_port(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.popen.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} is not listening on {port}:\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Stack:
    """Everything started for the run; stopped in reverse order."""

    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, cmd: list[str], ready: str | int, url: str = "",
              env: dict[str, str] | None = None) -> Proc:
        """Start `cmd`; `ready`: a line it prints when ready, or a port it listens on."""
        log = self.tmp / f"{name}.log"
        out = log.open("wb")
        popen = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        out.close()
        proc = Proc(name, popen, log, url)
        self.procs.append(proc)
        if isinstance(ready, int):
            proc.wait_port(ready)
        else:
            proc.wait_for(ready)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def parlour_config(tmp: Path, name: str, mongo_uri: str, stub_url: str,
                   redis_url: str | None) -> Path:
    """A config file as an operator would write it, with limits a load test needs."""
    data = tmp / f"data-{name}"
    data.mkdir()
    redis = f'url = "{redis_url}"' if redis_url else ""
    path = tmp / f"{name}.toml"
    path.write_text(f"""
data_dir = "{data}"

[server]
node_id = "{name}"
log_format = "json"
log_level = "INFO"

[mongo]
uri = "{mongo_uri}"
database = "bench_{os.getpid()}"

[redis]
{redis}

[limits]
messages_per_minute = 1000000
max_members = 1000
max_concurrent_replies = 64
# The idle scenario opens 10,000 sockets from one address with a few accounts, and the
# upload scenario sends one 1 GiB file.
connects_per_minute = 0
max_sockets_per_user = 1000
max_upload_mb = 1100

[llm]
local_enabled = false
default_model = "stub:bench"
extra_openai_compatible = {{ stub = "{stub_url}" }}
""")
    return path


def start_parlour(stack: Stack, name: str, config: Path) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())",
           "--config", str(config), "serve", "--port", str(port)]
    env = {"PARLOUR_AUTH__JWT_SECRET": "bench-secret-0123456789-0123456789"}
    return stack.spawn(name, cmd, "Running on", f"http://127.0.0.1:{port}", env)


def start_bare(stack: Stack, name: str, redis_url: str | None = None) -> Proc:
    port = free_port()
    cmd = [sys.executable, str(bare_script()), "--kind", "sio", "--uvloop", "--json", "orjson",
           "--port", str(port)]
    if redis_url:
        cmd += ["--redis", redis_url]
    return stack.spawn(name, cmd, "READY", f"http://127.0.0.1:{port}")


def start_redis(stack: Stack) -> str | None:
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    port = free_port()
    stack.spawn("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(stack.tmp)],
                "Ready to accept connections")
    return f"redis://127.0.0.1:{port}/0"


DB_PIDS: list[int] = []  # the SecantusDB this run started (its CPU is reported beside)


def start_mongo(stack: Stack) -> str:
    """SecantusDB as `parlour serve` starts it by default (on disk), shared by the nodes."""
    port = free_port()
    storage = stack.tmp / "mongo"
    storage.mkdir()
    proc = stack.spawn("secantusdb", [
        *_daemon_command(), "--host", "127.0.0.1", "--port", str(port),
        "--storage-path", str(storage), "--log-level", "WARNING"], port)
    DB_PIDS.append(proc.pid)
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator in its own process; its JSON result."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(spec)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"loadgen {spec['scenario']} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@dataclass
class Sizes:
    warmup: float
    duration: float
    connections: int
    members: int
    senders: int
    replies: int
    cross_members: int
    cross_senders: int
    idle_connections: int = 10_000
    idle_seconds: float = 25.0  # one ping interval: every socket is pinged once
    upload_mb: int = 1024


FULL = Sizes(warmup=3, duration=10, connections=32, members=100, senders=4, replies=60,
             cross_members=80, cross_senders=64)
QUICK = Sizes(warmup=2, duration=5, connections=32, members=100, senders=4, replies=30,
              cross_members=80, cross_senders=64)
SMOKE = Sizes(warmup=0.3, duration=0.7, connections=4, members=6, senders=2, replies=3,
              cross_members=0, cross_senders=0, idle_connections=50, idle_seconds=1,
              upload_mb=20)


@dataclass
class Row:
    name: str
    parlour: str
    bare: str
    ratio: str
    goal: str
    met: bool | None


def _us(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} µs"


SCENARIOS = ("persist", "fanout", "ttft", "cross", "idle", "upload")


def measure(stack: Stack, sizes: Sizes, mongo_uri: str, stub_url: str, only: set[str],
            log: Any) -> tuple[list[Row], dict[str, Any]]:
    raw: dict[str, Any] = {}
    rows: list[Row] = []
    base = {"warmup": sizes.warmup, "duration": sizes.duration}

    one_node = only & {"persist", "fanout", "ttft"}
    if one_node:
        parlour = start_parlour(stack, "parlour", parlour_config(
            stack.tmp, "parlour", mongo_uri, stub_url, None))
        log("parlour started")
        bare = start_bare(stack, "bare")
        log("bare started")

    def run(scenario: str, proc: Proc, target: str, **extra: Any) -> dict[str, Any]:
        spec = {**base, "scenario": scenario, "target": target, "urls": [proc.url],
                "pids": [proc.pid], "db_pids": DB_PIDS, **extra}
        result = load(spec)
        log(f"  {scenario:8s} {target:8s} {json.dumps(result)}")
        return result

    if "persist" in only:  # 1. persisted room message: CPU per acknowledged message.
        log("persisted room message")
        b = run("persist", bare, "bare", connections=sizes.connections)
        p = run("persist", parlour, "parlour", connections=sizes.connections)
        # The same load paced at the rate Parlour reached (its database sets that rate):
        # per-message costs at a few hundred messages a second, for both servers.
        paced = None if sizes is SMOKE else run(
            "persist", bare, "bare", connections=sizes.connections,
            rate=max(p["msgs_per_s"], 1.0))
        raw["persist"] = {"parlour": p, "bare": b, "bare_paced": paced}
        ratio = p["cpu_per_msg_us"] / b["cpu_per_msg_us"]
        rows.append(Row(
            f"persisted room message, server CPU per message ({sizes.connections} connections, "
            "one in flight each)",
            f"{_us(p['cpu_per_msg_us'])} ({p['msgs_per_s']:.0f} msg/s, "
            f"p50 {p['p50_ms']:.1f} ms, {p['refused']} refused)",
            f"{_us(b['cpu_per_msg_us'])} ({b['msgs_per_s']:.0f} msg/s)",
            f"{ratio:.2f}x", "≤ 3.0x", ratio <= 3.0 and p["refused"] == 0))
    if "persist" in only and paced is not None:
        paced_ratio = p["cpu_per_msg_us"] / paced["cpu_per_msg_us"]
        rows.append(Row(
            "persisted room message against bare paced to Parlour's rate "
            f"({p['msgs_per_s']:.0f} msg/s, set by the database)",
            f"{_us(p['cpu_per_msg_us'])} (database: "
            f"{_us(p['db_cpu_s'] / max(p['messages'], 1) * 1e6)} per message)",
            f"{_us(paced['cpu_per_msg_us'])} ({paced['msgs_per_s']:.0f} msg/s)",
            f"{paced_ratio:.2f}x", "(context)", None))

    if "fanout" in only:  # 2. fan-out to a room of M members, S senders.
        log("fan-out")
        b = run("fanout", bare, "bare", members=sizes.members, senders=sizes.senders)
        p = run("fanout", parlour, "parlour", members=sizes.members, senders=sizes.senders)
        raw["fanout"] = {"parlour": p, "bare": b}
        ratio = p["cpu_per_delivery_us"] / b["cpu_per_delivery_us"]
        rows.append(Row(
            f"room message fan-out, server CPU per delivery ({sizes.members} members, "
            f"{sizes.senders} senders)",
            f"{_us(p['cpu_per_delivery_us'])} ({p['deliveries_per_cpu_s']:.0f} deliveries per "
            f"CPU-second, {p['refused']} refused)",
            f"{_us(b['cpu_per_delivery_us'])} ({b['deliveries_per_cpu_s']:.0f} per CPU-second)",
            f"{ratio:.2f}x", "≤ 1.25x", ratio <= 1.25 and p["refused"] == 0))

    if "ttft" in only:  # 3. time to first token.
        log("time to first token")
        t = run("ttft", parlour, "parlour", model="stub:bench", replies=sizes.replies,
                warmup_replies=3, stub_url=stub_url)
        raw["ttft"] = t
        rows.append(Row(
            "time to first token: send_message → first assistant_delta minus the provider's "
            "own first-token time (p50)",
            f"{t['overhead_p50_ms']:.2f} ms (p50 {t['p50_ms']:.2f} ms, p99 {t['p99_ms']:.2f} ms)",
            f"stub alone {t['stub_p50_ms']:.2f} ms", "—", "≤ 5 ms",
            t["overhead_p50_ms"] <= 5.0))
    if one_node:
        stack.stop(parlour)
        stack.stop(bare)

    # 4. cross-node through Redis: two nodes against one node (both with Redis).
    cross = "cross" in only
    redis_url = start_redis(stack) if cross else None
    if cross and redis_url is None:
        log("cross-node: skipped (no redis-server)")
    if redis_url is not None:
        from bench.cross import cross_node  # it imports this module's helpers

        cross_rows, raw["cross"] = cross_node(stack, sizes, {**base, "db_pids": DB_PIDS},
                                              mongo_uri, stub_url, redis_url, log)
        rows += cross_rows
    capacity(stack, sizes, mongo_uri, stub_url, only, log, rows, raw)
    return rows, raw


def capacity(stack: Stack, sizes: Sizes, mongo_uri: str, stub_url: str, only: set[str],
             log: Any, rows: list[Row], raw: dict[str, Any]) -> None:
    """5. idle connections, 6. a large upload (bench/capacity.py)."""
    from bench.capacity import measure_idle, measure_upload
    for name, scenario in (("idle", measure_idle), ("upload", measure_upload)):
        if name in only:
            log({"idle": "idle connections", "upload": "upload"}[name])
            more_rows, more_raw = scenario(stack, sizes, mongo_uri, stub_url, log)
            rows += more_rows
            raw.update(more_raw)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def render(rows: list[Row], raw: dict[str, Any], command: str) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results", "",
        f"`{command}` on {now}, {machine()}.", "",
        "Server CPU is utime+stime of the server process(es) over the measured window; "
        "the bare server is python-socketio (`bare_sio.py --kind sio --uvloop --json "
        "orjson`) under the same load from the same raw Engine.IO load generator, in the "
        "same run. Only accepted acks count. Parlour's bench config lifts the per-user "
        "message limit, the connects per address (`connects_per_minute = 0`: the idle "
        "sockets all come from 127.0.0.1), the sockets per user (1000: the idle sockets "
        "use one account per 500) and the upload size (1100 MB). KB and MB are 1024 and "
        "1024² bytes.", "",
        "| scenario | Parlour | bare python-socketio | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.name} | {r.parlour} | {r.bare} | {r.ratio} | {r.goal} | {met} |")
    lines += ["", "<details><summary>raw figures</summary>", "", "```json",
              json.dumps(raw, indent=1, sort_keys=True), "```", "", "</details>", ""]
    return "\n".join(lines)


@contextlib.contextmanager
def stack_in(tmp: Path) -> Iterator[Stack]:
    stack = Stack(tmp)
    try:
        yield stack
    finally:
        stack.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="shorter windows")
    size.add_argument("--smoke", action="store_true", help="a few seconds, tiny sizes")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--mongo-uri", help="use this MongoDB instead of a SecantusDB")
    parser.add_argument("--no-cross", action="store_true", help="skip the two-node run")
    parser.add_argument("--only", help=f"comma-separated scenarios of {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    command = "make bench" if not (args.smoke or args.quick) else "python -m bench.run " + (
        "--smoke" if args.smoke else "--quick")

    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:5.1f} s] {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="parlour-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with stack_in(tmp) as stack:
            mongo_uri = args.mongo_uri or start_mongo(stack)
            stub_port = free_port()
            stack.spawn("stub", [sys.executable, "-m", "bench.stub_llm",
                                 "--port", str(stub_port)], "READY")
            stub_url = f"http://127.0.0.1:{stub_port}/v1"
            log("database and stub started")
            only = set(args.only.split(",")) if args.only else set(SCENARIOS)
            if args.smoke or args.no_cross:
                only.discard("cross")
            rows, raw = measure(stack, sizes, mongo_uri, stub_url, only, log)
    text = render(rows, raw, command)
    Path(args.out).write_text(text)
    print()
    print("\n".join(text.splitlines()[6:6 + 2 + len(rows)]))
    print(f"\nwritten to {args.out}")
    if args.smoke:  # too small to say anything about the goals: it ran, that is all
        return 0
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    # As bench.run, the module bench/capacity.py imports, not a second copy as __main__.
    from bench import run
    sys.exit(run.main())
