"""The embedded default: SecantusDB (MongoDB wire protocol) as a child process.

With a data directory the daemon listens on loopback only, its files are private (the
directory 0700, files 0600: it runs with umask 077) and it requires SCRAM-SHA-256
credentials (`--auth`). On the first start the user is created while the daemon is not
yet requiring auth (on a fresh, empty, loopback-only database), then it is restarted with
`--auth`; the password is kept in `data_dir/secantusdb.password` (0600). The in-memory
daemon of the tests has no credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path
from typing import TextIO

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

log = logging.getLogger(__name__)

USER = "parlour"
PASSWORD_FILE = "secantusdb.password"


def make_private(path: Path) -> None:
    """`path` and everything in it readable by its owner only (0700 dirs, 0600 files)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            (Path(root) / name).chmod(0o700)
        for name in files:
            (Path(root) / name).chmod(0o600)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _daemon_command() -> list[str]:
    exe = Path(sys.executable).parent / "secantusd-py"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("secantusd-py")
    if found:
        return [found]
    return [sys.executable, "-m", "secantus"]


def _read_password(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


class EmbeddedMongo:
    """Starts `secantusd-py` on a free loopback port and stops it on close()."""

    def __init__(self, storage_path: Path | str, *, start_timeout: float = 30.0) -> None:
        self.storage_path = storage_path
        self.start_timeout = start_timeout
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._log_path: Path | None = None
        self._password: str | None = None

    @property
    def uri(self) -> str:
        if self._password is None:
            return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        return (f"mongodb://{USER}:{self._password}@127.0.0.1:{self.port}/"
                "?directConnection=true&authSource=admin")

    async def start(self) -> str:
        """Start the daemon, wait until it accepts connections, return its URI."""
        if isinstance(self.storage_path, Path):
            await asyncio.to_thread(make_private, self.storage_path)
            self._log_path = self.storage_path.parent / "secantusdb.log"
            password_path = self.storage_path.parent / PASSWORD_FILE
            password = await asyncio.to_thread(_read_password, password_path)
            if password is None:
                password = await self._create_user()
                await asyncio.to_thread(_write_private, password_path, password)
            self._password = password
        await self._launch(auth=self._password is not None)
        return self.uri

    async def _create_user(self) -> str:
        """First start on this data directory: create the user the server connects as."""
        await self._launch(auth=False)
        password = secrets.token_urlsafe(32)
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.uri, serverSelectionTimeoutMS=int(self.start_timeout * 1000))
        try:
            # A data directory from before credentials (or whose password file was lost).
            with contextlib.suppress(OperationFailure):
                await client.admin.command("dropUser", USER)
            await client.admin.command("createUser", USER, pwd=password, roles=["root"])
        except PyMongoError as exc:
            raise RuntimeError(f"could not create the database user: {exc}") from exc
        finally:
            await client.close()
            await self.stop()
        log.info("embedded SecantusDB: created its user; the password is in %s", PASSWORD_FILE)
        return password

    async def _launch(self, *, auth: bool) -> None:
        cwd: str | None = None
        if isinstance(self.storage_path, Path):
            cwd = str(self.storage_path)
        self.port = free_port()
        cmd = [
            *_daemon_command(),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", str(self.storage_path),
            "--log-level", "WARNING",
        ]
        if auth:
            cmd.append("--auth")
        log.info("starting embedded SecantusDB on port %d (%s)", self.port, self.storage_path)
        # cwd is the data dir so the daemon never picks up a stray ./secantusd.toml.
        log_file = self._log_file()
        try:
            # umask 077 (its data files are the owner's only) through sh, which then execs
            # the daemon: uvloop's subprocess_exec has no umask argument.
            self._proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", 'umask 077 && exec "$@"', "secantusd", *cmd,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
            )
        finally:
            if not isinstance(log_file, int):
                log_file.close()
        await self._wait_ready()

    def _log_file(self) -> int | TextIO:
        # A file, never a pipe nobody reads: a full pipe would stall the daemon.
        if self._log_path is None:
            return asyncio.subprocess.DEVNULL
        fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self._log_path, 0o600)
        return os.fdopen(fd, "a")

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                tail = ""
                if self._log_path is not None and self._log_path.exists():
                    tail = self._log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"embedded SecantusDB exited with {self._proc.returncode}: {tail}"
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"embedded SecantusDB did not start within {self.start_timeout}s")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace_seconds`."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace_seconds)
        except TimeoutError:
            log.warning("embedded SecantusDB ignored SIGTERM; killing it")
            proc.kill()
            await proc.wait()
