"""`parlour` beside a running server, and startup failures in one sentence (issue 12, §2, §6)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_port

PARLOUR = str(Path(sys.executable).parent / "parlour")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLOUR_")}
    env.update(PARLOUR_LLM__LOCAL_ENABLED="false", **extra)
    return env


def cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `parlour ARGS` with no terminal (stdin is a pipe or /dev/null)."""
    return subprocess.run(
        [PARLOUR, *args], env=_env(**env), capture_output=True, text=True, timeout=90,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line on stderr, no traceback."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parlour: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@dataclass
class Running:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`parlour serve` with the embedded SecantusDB, as a newcomer runs it."""
    root = tmp_path_factory.mktemp("served")
    data_dir = root / "data"
    port = free_port()
    with (root / "server.log").open("wb") as log:  # a file: a full pipe would stall it
        proc = subprocess.Popen(
            [PARLOUR, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=_env(), stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 90, proc)
        yield Running(data_dir, port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, (root / "server.log").read_text()[-2000:]
    assert not (data_dir / "node.json").exists()  # removed at exit


def test_node_file_names_the_running_server(running: Running) -> None:
    node = json.loads((running.data_dir / "node.json").read_text())
    assert node["url"] == f"http://127.0.0.1:{running.port}"
    assert node["pid"] == running.proc.pid
    # The embedded database needs credentials (the file is the owner's only).
    assert node["mongo_uri"].startswith("mongodb://parlour:")
    assert "@127.0.0.1:" in node["mongo_uri"]
    assert (running.data_dir / "node.json").stat().st_mode & 0o077 == 0


def test_check_asks_the_running_node(running: Running) -> None:
    # Global options after the subcommand, as before it.
    proc = cli("check", "--data-dir", str(running.data_dir))
    assert proc.returncode == 0, proc.stderr
    assert f"running, pid {running.proc.pid}, http://127.0.0.1:{running.port}" in proc.stdout
    assert "mongo    ok" in proc.stdout and "status: degraded" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_users_commands_work_while_the_server_runs(running: Running) -> None:
    data = str(running.data_dir)
    made = cli("users", "create", "--email", "ada@example.com", "--name", "Ada",
               "--password-stdin", "--data-dir", data, stdin="difference engine\n")
    assert made.returncode == 0, made.stderr
    assert "created user ada@example.com" in made.stdout
    assert f"running server's database (pid {running.proc.pid})" in made.stdout
    # The account is the server's: it can log in over REST at once.
    import urllib.request
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.port}/api/v1/auth/login", method="POST",
        data=json.dumps({"email": "ada@example.com", "password": "difference engine"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["user"]["is_admin"] is False

    promoted = cli("--data-dir", data, "users", "set-admin", "--email", "ADA@example.com")
    assert promoted.returncode == 0, promoted.stderr
    assert "ada@example.com is now an admin" in promoted.stdout
    listed = cli("users", "list", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "ada@example.com" in line)
    assert " yes " in row and row.rstrip().endswith("Ada")

    taken = cli("users", "create", "--email", "ada@example.com", "--password-stdin",
                "--data-dir", data, stdin="another password\n")
    assert "already exists" in one_line_error(taken)
    missing = cli("users", "set-admin", "--email", "nobody@example.com", "--data-dir", data)
    assert "no account with the email nobody@example.com" in one_line_error(missing)


def test_users_create_validates_like_signup(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    bad_email = cli("users", "create", "--email", "notanemail", "--password-stdin",
                    "--data-dir", data, stdin="long enough pw\n")
    assert "email: must be an email address" in one_line_error(bad_email)
    short = cli("users", "create", "--email", "bo@example.com", "--password-stdin",
                "--data-dir", data, stdin="short\n")
    assert "password: must be at least 8 characters" in one_line_error(short)
    # No terminal and no password: a sentence saying how to give one, not EOFError.
    silent = cli("users", "create", "--email", "bo@example.com", "--data-dir", data)
    assert "--password-stdin" in one_line_error(silent)
    assert not (tmp_path / "data" / "mongo").exists()  # refused before opening anything


def test_users_create_without_a_server_starts_the_embedded_database(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    made = cli("--data-dir", data, "users", "create", "--email", "root@example.com",
               "--admin", "--password-stdin", stdin="bootstrap pw\n")
    assert made.returncode == 0, made.stderr
    assert "created admin root@example.com" in made.stdout and "embedded database" in made.stdout
    listed = cli("users", "list", "--data-dir", data)
    assert "root@example.com" in listed.stdout and "1 account(s)" in listed.stdout


def test_busy_port_is_one_sentence_before_booting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    message = one_line_error(proc)
    assert f"port {port} on 127.0.0.1 is already in use" in message and "--port" in message
    assert not (tmp_path / "data" / "mongo").exists()  # refused before starting anything


def test_second_server_on_the_same_data_dir_is_refused(running: Running) -> None:
    proc = cli("serve", "--port", str(free_port()), "--data-dir", str(running.data_dir))
    message = one_line_error(proc)
    assert f"another parlour (pid {running.proc.pid}" in message and "--data-dir" in message


def test_misspelled_environment_variable_names_the_right_one() -> None:
    proc = cli("check", PARLOUR_LIMIT__MAX_UPLOAD_MB="10")
    message = one_line_error(proc)
    assert "PARLOUR_LIMIT__MAX_UPLOAD_MB" in message
    assert "did you mean PARLOUR_LIMITS__MAX_UPLOAD_MB?" in message


def test_bad_value_names_the_key_and_the_variable() -> None:
    proc = cli("check", "--config", "/nonexistent/config.toml")
    assert "config file not found: /nonexistent/config.toml" in one_line_error(proc)
    proc = cli("check", PARLOUR_SERVER__PORT="eighty")
    message = one_line_error(proc)
    assert "server.port" in message and "(set by PARLOUR_SERVER__PORT)" in message


def test_serve_with_the_port_free_again_after_a_stop(tmp_path: Path) -> None:
    """The bound-early socket is the one aiohttp serves on (no second bind, no race)."""
    port = free_port()
    proc = subprocess.Popen(
        [PARLOUR, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, 90, proc)
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/internal/health", timeout=10) as r:
            assert json.load(r)["checks"]["mongo"]["ok"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
