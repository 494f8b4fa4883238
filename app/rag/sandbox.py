"""The extraction sandbox: a small pool of worker processes that read untrusted files.

Parsing a PDF or a docx happens in `app.rag.sandbox_worker`, a separate process with its
memory and CPU time capped (a pool from app/workers.py), so a hostile file can neither
exhaust the server's memory nor hold the GIL the event loop needs. Each job has a
wall-clock timeout; a job that times out or is cancelled (its document was deleted, the
server shuts down) kills its worker, and the next job starts a fresh one. Idle workers
are kept for the next job.
"""

from __future__ import annotations

import logging
import math
import signal
from dataclasses import dataclass
from pathlib import Path

import orjson

from app.config import EmbeddingSettings, IngestSettings
from app.errors import INTERNAL, INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError
from app.rag.chunking import Chunk
from app.workers import WorkerDied, WorkerPool, WorkerTimeout

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExtractJob:
    """One file to extract and chunk."""

    filename: str
    content_type: str | None
    path: Path


class ExtractionPool:
    """At most `size` workers at once; jobs beyond that wait for a free one."""

    def __init__(
        self, settings: IngestSettings, embeddings: EmbeddingSettings, size: int,
    ) -> None:
        self._settings = settings
        self._embeddings = embeddings
        self._pool = WorkerPool("app.rag.sandbox_worker", settings.extract_memory_mb, size)

    @property
    def busy(self) -> int:
        """Workers running a job now."""
        return self._pool.busy

    def pids(self) -> list[int]:
        """The worker processes alive now (idle or busy)."""
        return self._pool.pids()

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
        if self._pool.closed:
            raise AppError(INTERNAL, "the extraction pool is closed")
        timeout = self._settings.extract_timeout_seconds
        try:
            reply = await self._pool.call(self._job_line(job), timeout)
        except WorkerTimeout:
            raise AppError(
                PAYLOAD_TOO_LARGE,
                f"reading it took longer than {timeout:g} s (ingest.extract_timeout_seconds)",
            ) from None
        except WorkerDied as died:
            raise self._died(died) from None
        return self._chunks(orjson.loads(reply))

    @staticmethod
    def _died(died: WorkerDied) -> AppError:
        if died.returncode == -signal.SIGXCPU:
            return AppError(
                PAYLOAD_TOO_LARGE,
                "reading it used more CPU time than ingest.extract_timeout_seconds allows",
            )
        # SIGKILL/SIGSEGV/SIGABRT: e.g. memory ran out inside a C extension.
        log.warning("extraction worker %d ended with %s", died.pid, died.returncode)
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
        await self._pool.close()
