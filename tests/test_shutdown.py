"""An idle `parlour serve` stops promptly on SIGTERM and leaves no child behind.

`server.shutdown_timeout_seconds` is the time open connections get to finish; an idle
server (the default config: embedded SecantusDB, embedded llama.cpp model) has nothing to
wait for, and an operator restarting it notices every second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.servers import free_port, wait_port

PARLOUR = str(Path(sys.executable).parent / "parlour")


def _session_processes(sid: int) -> list[str]:
    """`pid command` of every live process in session `sid` (the server's children)."""
    found = subprocess.run(["pgrep", "-a", "-s", str(sid)], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "<defunct>" not in line]


def test_idle_server_exits_promptly_on_sigterm_and_leaves_no_children(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLOUR_")}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:  # a file: a full pipe would stall it
        proc = subprocess.Popen(
            [PARLOUR, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            env=env, stdout=log, stderr=subprocess.STDOUT,
            # Its own session: every process it starts (database, model, workers) can be
            # found afterwards, even one that was orphaned.
            start_new_session=True,
        )
    try:
        wait_port(port, 180, proc)
        url = f"http://127.0.0.1:{port}/internal/health"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert json.load(answer)["checks"]["mongo"]["ok"]
        children = _session_processes(proc.pid)
        assert any("secantusd" in line for line in children), children
        assert any("llama-server" in line for line in children), children

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text(errors="replace")[-2000:]
    assert proc.returncode == 0, output
    # Well under server.shutdown_timeout_seconds (5 s): nothing was open.
    assert took < 3.0, f"idle server took {took:.1f} s to exit\n{output}"
    left: list[str] = []
    for _ in range(20):  # a child reparented to init may need a moment to be reaped
        left = _session_processes(proc.pid)
        if not left:
            break
        time.sleep(0.1)
    assert not left, left
