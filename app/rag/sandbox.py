"""The extraction sandbox: a small pool of worker processes that read untrusted files.

Parsing a PDF or a docx happens in `app.rag.sandbox_worker`, a separate process with its
memory and CPU time capped, so a hostile file can neither exhaust the server's memory
nor hold the GIL the event loop needs. Each job has a wall-clock timeout; a job that
times out or is cancelled (its document was deleted, the server shuts down) kills its
worker, and the next job starts a fresh one. Idle workers are kept for the next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from app.config import EmbeddingSettings, IngestSettings
from app.errors import INTERNAL, INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError
from app.rag.chunking import Chunk

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# The package root, so the worker imports this very code (a checkout or site-packages).
_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True, slots=True)
class ExtractJob:
    """One file to extract and chunk."""

    filename: str
    content_type: str | None
    path: Path


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


class ExtractionPool:
    """At most `size` workers at once; jobs beyond that wait for a free one."""

    def __init__(
        self, settings: IngestSettings, embeddings: EmbeddingSettings, size: int,
    ) -> None:
        self._settings = settings
        self._embeddings = embeddings
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False

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
        # stderr: nowhere. Parsers warn with text taken from the file, which must not reach
        # the server's log; what went wrong comes back in the reply.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "app.rag.sandbox_worker",
            str(self._settings.extract_memory_mb),
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

    def _job_line(self, job: ExtractJob) -> bytes:
        s, e = self._settings, self._embeddings
        return orjson.dumps({
            "filename": job.filename, "content_type": job.content_type, "path": str(job.path),
            "max_chars": s.max_extracted_chars, "max_zip_entries": s.max_zip_entries,
            "max_zip_bytes": int(s.max_zip_uncompressed_mb * MIB),
            "max_zip_ratio": s.max_zip_ratio,
            "chunk_tokens": e.chunk_tokens,
            "chunk_overlap": min(e.chunk_overlap, e.chunk_tokens - 1),
            # The CPU cap backs up the wall-clock timeout (e.g. while the loop is stalled).
            "cpu_seconds": math.ceil(s.extract_timeout_seconds) + 1,
        })

    async def extract(self, job: ExtractJob) -> list[Chunk]:
        """The file's chunks; `payload_too_large` or `invalid_payload` saying why not."""
        if self._closed:
            raise AppError(INTERNAL, "the extraction pool is closed")
        line = self._job_line(job)
        async with self._slots:
            reply = await self._call(line, retry_stale=True)
        return self._chunks(orjson.loads(reply))

    async def _call(self, line: bytes, *, retry_stale: bool) -> bytes:
        worker, reused = await self._take() if retry_stale else (await self._spawn(), False)
        reusable = False
        try:
            async with asyncio.timeout(self._settings.extract_timeout_seconds):
                reply = await worker.call(line)
            reusable = True
            return reply
        except TimeoutError:
            raise AppError(
                PAYLOAD_TOO_LARGE,
                f"reading it took longer than {self._settings.extract_timeout_seconds:g} s "
                "(ingest.extract_timeout_seconds)",
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError):
            await worker.kill()  # reaped: its exit status says why it stopped
            if reused and retry_stale:
                # It may have died while idle (killed from outside): once more, fresh.
                log.warning("extraction worker %d was gone; trying a new one", worker.pid)
            else:
                raise self._died(worker) from None
        finally:
            if reusable and not self._closed:
                self._idle.append(worker)
            else:
                await worker.kill()
                self._all.discard(worker)
        return await self._call(line, retry_stale=False)

    def _died(self, worker: _Worker) -> AppError:
        code = worker.proc.returncode
        if code == -signal.SIGXCPU:
            return AppError(
                PAYLOAD_TOO_LARGE,
                "reading it used more CPU time than ingest.extract_timeout_seconds allows",
            )
        # SIGKILL/SIGSEGV/SIGABRT: e.g. memory ran out inside a C extension.
        log.warning("extraction worker %d ended with %s", worker.pid, code)
        return AppError(
            PAYLOAD_TOO_LARGE,
            "reading it stopped the extraction worker (over ingest.extract_memory_mb?)",
        )

    @staticmethod
    def _chunks(reply: dict[str, object]) -> list[Chunk]:
        if not reply.get("ok"):
            code = str(reply.get("code") or INVALID_PAYLOAD)
            message = str(reply.get("message") or "could not read it")
            # An unexpected parser failure is still the file's fault, not the server's.
            raise AppError(INVALID_PAYLOAD if code == INTERNAL else code, message)
        rows = reply["chunks"]
        assert isinstance(rows, list)
        return [Chunk(int(i), str(text), page, int(tokens)) for i, text, page, tokens in rows]

    async def close(self) -> None:
        """Kill every worker, idle or busy (their jobs fail or were cancelled already)."""
        self._closed = True
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)
