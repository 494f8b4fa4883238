"""What Parlour's Engine.IO loop (namespaces/eio.py) saves, on bare python-socketio.

    python -m bench.eio_loop [--rate N] [--rounds N]

Two bare python-socketio servers (`bench/bare_sio.py`, as `make bench` runs it), one with
Parlour's websocket loop installed, take the persisted-message load (32 connections, one
acknowledged event in flight each) in alternating runs; prints the server CPU per
acknowledged message of each run and the means. `--rate` paces the load (messages a
second) instead of running it flat out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench import run as bench_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"stock": [], "parlour loop": []}
    with tempfile.TemporaryDirectory(prefix="eio-loop-") as tmp, \
            bench_run.stack_in(Path(tmp)) as stack:
        servers = {}
        for name in results:
            port = bench_run.free_port()
            install = "from namespaces import eio; eio.install(); " if name != "stock" else ""
            code = (f"import sys; sys.argv = ['bare_sio.py', '--kind', 'sio', '--uvloop', "
                    f"'--json', 'orjson', '--port', '{port}']; {install}"
                    f"exec(compile(open({str(bench_run.bare_script())!r}).read(), "
                    "'bare_sio.py', 'exec'))")
            servers[name] = stack.spawn(name.replace(" ", "-"), [sys.executable, "-c", code],
                                        "READY", f"http://127.0.0.1:{port}")
        for i in range(args.rounds):
            for name in list(results)[:: 1 if i % 2 == 0 else -1]:
                proc = servers[name]
                spec = {"warmup": 2, "duration": 6, "scenario": "persist", "target": "bare",
                        "urls": [proc.url], "pids": [proc.pid], "db_pids": [],
                        "connections": 32}
                if args.rate:
                    spec["rate"] = args.rate
                result = bench_run.load(spec)
                results[name].append(result["cpu_per_msg_us"])
                print(f"{name:13s} {result['cpu_per_msg_us']:6.1f} µs per message "
                      f"({result['msgs_per_s']:.0f}/s)", flush=True)
    for name, values in results.items():
        print(f"{name:13s} mean {statistics.mean(values):6.1f} µs "
              f"(runs: {', '.join(f'{v:.1f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
