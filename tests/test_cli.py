"""The console script: `parlour serve` with the embedded defaults, and startup failures."""

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


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLOUR_")}
    env.update(extra)
    return env


def test_serve_starts_embedded_mongo_and_answers_health(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [PARLOUR, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        env=_env(PARLOUR_LLM__LOCAL_ENABLED="false"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, 90, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/internal/health", timeout=10) as r:
            health = json.load(r)
        assert health["checks"]["mongo"]["ok"] and health["checks"]["blobs"]["ok"]
        assert health["status"] == "degraded"  # the local model is disabled here
        assert (tmp_path / "data" / "mongo").is_dir()
        assert (tmp_path / "data" / "jwt_secret").stat().st_mode & 0o077 == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]
    # The embedded SecantusDB child went away with the server.
    ps = subprocess.run(["pgrep", "-f", str(tmp_path / "data" / "mongo")], capture_output=True)
    assert ps.stdout.strip() == b""


def test_unreachable_mongo_is_a_clear_startup_error(tmp_path: Path) -> None:
    dead = free_port()
    started = time.monotonic()
    proc = subprocess.run(
        [PARLOUR, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        env=_env(PARLOUR_MONGO__URI=f"mongodb://127.0.0.1:{dead}/?serverSelectionTimeoutMS=500",
                 PARLOUR_MONGO__TIMEOUT_SECONDS="1"),
        capture_output=True, timeout=60,
    )
    assert proc.returncode == 1
    assert b"cannot reach MongoDB at mongo.uri" in proc.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "mongo").exists()  # no fallback to the embedded database


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [PARLOUR, "check"], env=_env(PARLOUR_LIMITS__MAX_UPLOAD_MB="lots"),
        capture_output=True, timeout=60,
    )
    assert proc.returncode == 1
    assert b"limits.max_upload_mb" in proc.stderr


def test_users_create_admin(tmp_path: Path) -> None:
    proc = subprocess.run(
        [PARLOUR, "users", "create", "--email", "root@example.com", "--password",
         "bootstrap pw", "--admin", "--data-dir", str(tmp_path / "data")],
        env=_env(PARLOUR_LLM__LOCAL_ENABLED="false"), capture_output=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"created admin root@example.com" in proc.stdout
