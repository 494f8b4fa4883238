"""The embedded default: SecantusDB (MongoDB wire protocol) as a child process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import sys
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)


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


class EmbeddedMongo:
    """Starts `secantusd-py` on a free loopback port and stops it on close()."""

    def __init__(self, storage_path: Path | str, *, start_timeout: float = 30.0) -> None:
        self.storage_path = storage_path
        self.start_timeout = start_timeout
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._log_path: Path | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def start(self) -> str:
        """Start the daemon, wait until it accepts connections, return its URI."""
        cwd: str | None = None
        if isinstance(self.storage_path, Path):
            self.storage_path.mkdir(parents=True, exist_ok=True)
            cwd = str(self.storage_path)
            self._log_path = self.storage_path.parent / "secantusdb.log"
        self.port = free_port()
        cmd = [
            *_daemon_command(),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", str(self.storage_path),
            "--log-level", "WARNING",
        ]
        log.info("starting embedded SecantusDB on port %d (%s)", self.port, self.storage_path)
        # cwd is the data dir so the daemon never picks up a stray ./secantusd.toml.
        log_file = self._log_file()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
            )
        finally:
            if not isinstance(log_file, int):
                log_file.close()
        await self._wait_ready()
        return self.uri

    def _log_file(self) -> int | TextIO:
        # A file, never a pipe nobody reads: a full pipe would stall the daemon.
        if self._log_path is None:
            return asyncio.subprocess.DEVNULL
        return self._log_path.open("a")

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
