"""A capped pool of worker processes for reading untrusted input (the parent side).

Used by the extraction sandbox (app/rag/sandbox.py) and the media sandbox
(app/media/sandbox.py). Each worker is `python -P -m <module> <memory_mb>`, a process
whose child loop is app/worker_main.py: its address space is capped once and its CPU
time before each job. It gets a clean environment (no secrets), its own session, `/`
as its working directory and no stderr (decoders warn with text taken from the file,
which must not reach the server's log). A job is one JSON line on its stdin; the reply
is a 4-byte big-endian length and a JSON body on its stdout.

A job that outlives its wall-clock timeout, or is cancelled, kills its worker; a worker
that dies fails only its job; idle workers are kept for the next one, and an idle one
found dead (killed from outside) is replaced once. `close` kills them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# The package root, so a worker imports this very code (a checkout or site-packages).
_ROOT = str(Path(__file__).resolve().parents[1])


class WorkerTimeout(Exception):
    """The job outlived its wall-clock timeout (its worker was killed)."""


class WorkerDied(Exception):
    """The worker ended while running the job (a crash, a CPU or memory cap)."""

    def __init__(self, pid: int, returncode: int | None) -> None:
        super().__init__(f"worker {pid} ended with {returncode}")
        self.pid = pid
        self.returncode = returncode


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, job: bytes) -> bytes:
        """Send a job line, read its reply; IncompleteReadError if the worker died."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(job + b"\n")
        await self.proc.stdin.drain()
        size = int.from_bytes(await self.proc.stdout.readexactly(4), "big")
        return await self.proc.stdout.readexactly(size)

    async def kill(self) -> None:
        """SIGKILL and reap it (it never gets to finish what it was reading)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await asyncio.shield(self.proc.wait())


class WorkerPool:
    """At most `size` workers of `module` at once; jobs beyond that wait for a free one."""

    def __init__(self, module: str, memory_mb: int, size: int) -> None:
        self._module = module
        self._memory_mb = memory_mb
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self.closed = False

    @property
    def busy(self) -> int:
        """Workers running a job now."""
        return len(self._all) - len(self._idle)

    def pids(self) -> list[int]:
        """The worker processes alive now (idle or busy)."""
        return [w.pid for w in self._all]

    async def _spawn(self) -> _Worker:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p),
            "LC_ALL": "C.UTF-8",
        }
        # No secrets in its environment; its own session, so a terminal's ^C is ours to pass.
        # -P: the working directory is not on sys.path (an `app` there must not be imported).
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", self._module, str(self._memory_mb),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env, cwd="/", start_new_session=True,
        )
        worker = _Worker(proc)
        self._all.add(worker)
        return worker

    async def _take(self) -> tuple[_Worker, bool]:
        """An idle worker that is still alive (reused: True), else a new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.proc.returncode is None:
                return worker, True
            self._all.discard(worker)  # it died while idle (killed from outside)
        return await self._spawn(), False

    async def call(self, line: bytes, wall_seconds: float) -> bytes:
        """The worker's reply to one job line; WorkerTimeout or WorkerDied if none came.

        `wall_seconds` counts from when a worker is free, not while the job waits for one.
        """
        async with self._slots:
            return await self._call(line, wall_seconds, retry_stale=True)

    async def _call(self, line: bytes, wall_seconds: float, *, retry_stale: bool) -> bytes:
        worker, reused = await self._take() if retry_stale else (await self._spawn(), False)
        reusable = False
        try:
            async with asyncio.timeout(wall_seconds):
                reply = await worker.call(line)
            reusable = True
            return reply
        except TimeoutError:
            raise WorkerTimeout from None
        except (asyncio.IncompleteReadError, ConnectionError):
            await worker.kill()  # reaped: its exit status says why it stopped
            if reused and retry_stale:
                # It may have died while idle (killed from outside): once more, fresh.
                log.warning("worker %d (%s) was gone; trying a new one", worker.pid,
                            self._module)
            else:
                raise WorkerDied(worker.pid, worker.proc.returncode) from None
        finally:
            if reusable and not self.closed:
                self._idle.append(worker)
            else:
                await worker.kill()
                self._all.discard(worker)
        return await self._call(line, wall_seconds, retry_stale=False)

    async def close(self) -> None:
        """Kill every worker, idle or busy (their jobs fail or were cancelled already)."""
        self.closed = True
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)
