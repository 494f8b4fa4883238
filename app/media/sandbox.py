"""Untrusted images and videos are decoded in worker processes, never in the server.

Same design as the extraction sandbox (app/rag/sandbox.py): a worker's memory and CPU
are capped (`ingest.extract_memory_mb`, `ingest.extract_timeout_seconds`), a job that
takes too long kills its worker, a worker that dies (a decoder crash, memory) fails
only its job, and idle workers are kept for the next one.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from app.config import IngestSettings
from app.errors import INTERNAL, INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError
from app.llm.base import ImagePart
from app.rag.sandbox import _ROOT, _Worker


class MediaSandbox:
    """Decodes images and videos for attachments (app.media.attachments.MediaDecoder)."""

    def __init__(self, settings: IngestSettings, size: int = 2) -> None:
        self._settings = settings
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False

    def pids(self) -> list[int]:
        """The worker processes alive now."""
        return [w.pid for w in self._all]

    async def image(self, data: bytes, filename: str) -> ImagePart:
        """The image checked, resized and re-encoded."""
        reply = await self._run({"kind": "image", "filename": filename}, data)
        return _images(reply)[0]

    async def read(self, data: bytes, filename: str, frames: int) -> tuple[bytes | None,
                                                                          list[ImagePart]]:
        """A video's audio track (16 kHz WAV) and `frames` evenly spaced frames."""
        reply = await self._run({"kind": "video", "filename": filename, "frames": frames}, data)
        audio = reply.get("audio")
        return (base64.b64decode(audio) if isinstance(audio, str) else None), _images(reply)

    async def _spawn(self) -> _Worker:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p),
            "LC_ALL": "C.UTF-8",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.media.sandbox_worker",
            str(self._settings.extract_memory_mb),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            start_new_session=True,
        )
        worker = _Worker(proc)
        self._all.add(worker)
        return worker

    async def _run(self, job: dict[str, Any], data: bytes) -> dict[str, Any]:
        if self._closed:
            raise AppError(INTERNAL, "the media sandbox is closed")
        filename = str(job["filename"])
        timeout = self._settings.extract_timeout_seconds
        with tempfile.TemporaryDirectory(prefix="parlour-media-") as tmp:
            path = Path(tmp) / "file"
            await asyncio.to_thread(path.write_bytes, data)
            line = orjson.dumps({**job, "path": str(path), "cpu_seconds": math.ceil(timeout) + 1})
            async with self._slots:
                worker = self._idle.pop() if self._idle else await self._spawn()
                reusable = False
                try:
                    async with asyncio.timeout(timeout):
                        raw = await worker.call(line)
                    reusable = True
                except TimeoutError:
                    raise AppError(PAYLOAD_TOO_LARGE, f"{filename}: decoding it took longer "
                                   f"than {timeout:g} s (ingest.extract_timeout_seconds)") from None
                except (asyncio.IncompleteReadError, ConnectionError):
                    raise AppError(PAYLOAD_TOO_LARGE, f"{filename}: decoding it stopped the "
                                   "media worker (over ingest.extract_memory_mb?)") from None
                finally:
                    if reusable and not self._closed:
                        self._idle.append(worker)
                    else:
                        await worker.kill()
                        self._all.discard(worker)
        reply: dict[str, Any] = orjson.loads(raw)
        if not reply.get("ok"):
            raise AppError(str(reply.get("code") or INVALID_PAYLOAD),
                           str(reply.get("message") or f"{filename}: could not read it"))
        return reply

    async def close(self) -> None:
        """Kill every worker."""
        self._closed = True
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)


def _images(reply: dict[str, Any]) -> list[ImagePart]:
    return [ImagePart(str(kind), base64.b64decode(data)) for kind, data in reply["images"]]
