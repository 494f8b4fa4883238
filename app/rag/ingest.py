"""Ingestion: a fixed pool of workers turns stored files into chunk vectors.

The work list is the `processing` records in MongoDB; a worker claims one with a lease
(renewed while it works), so nodes share the work, a crashed node's documents are taken
over when their lease ends, and nothing waits in memory beyond the pool's own jobs.
Files are read in the extraction sandbox (separate processes, app.rag.sandbox). One
user's documents take at most all workers but one, so another user's never wait behind
them; deleting a document cancels its work (and kills its extraction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO, Any

from app.config import EmbeddingSettings, IngestSettings, LimitsSettings
from app.errors import INTERNAL, PROVIDER_ERROR, UNAVAILABLE, AppError, invalid
from app.events import Emitter
from app.metrics import Metrics
from app.rag.chunking import Chunk
from app.rag.embeddings import Embedder
from app.rag.sandbox import ExtractionPool, ExtractJob
from app.tasks import acquire_in_thread
from storage.blobs import BlobStore
from storage.files import FileRecord, FileStore
from storage.vectors import MetadataValue, VectorItem, VectorStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
EMBED_BATCH = 32  # chunks per embed + upsert step (one progress update each)
SNIPPET_CHARS = 4000  # chunk text kept in vector metadata (sources show at least 1,000)
RETRYABLE = {UNAVAILABLE, PROVIDER_ERROR}


class _Gone(Exception):
    """The record was deleted while it was being ingested."""


def chunk_metadata(record: FileRecord, chunk: Chunk) -> dict[str, MetadataValue]:
    """What a chunk's vector carries: ids for filters, position, and its text."""
    meta: dict[str, MetadataValue] = {
        "kind": "file" if record.scope == "chat" else "document",
        "document_id": record.file_id, "filename": record.filename,
        "chunk_index": chunk.index, "page": chunk.page or 0,
        "text": chunk.text[:SNIPPET_CHARS], "owner_id": record.owner_id,
    }
    if record.chat_id is not None:
        meta["chat_id"] = record.chat_id
    return meta


class Ingestor:
    """`workers` tasks that claim, extract, chunk, embed and upsert documents."""

    def __init__(
        self, settings: EmbeddingSettings, ingest: IngestSettings, limits: LimitsSettings,
        files: FileStore, blobs: BlobStore, vectors: VectorStore, embedder: Embedder,
        emitter: Emitter, metrics: Metrics, node_id: str, *, single_node: bool,
        poll_seconds: float = 5.0,
    ) -> None:
        self._settings = settings
        self._pool = ExtractionPool(ingest, settings, settings.ingest_workers)
        self._limits = limits
        self._files = files
        self._blobs = blobs
        self._vectors = vectors
        self._embedder = embedder
        self._emitter = emitter
        self._metrics = metrics
        self._node_id = node_id
        self._single_node = single_node
        self._poll = poll_seconds
        self._lease = settings.ingest_lease_seconds
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}  # file_id -> its work
        self._busy: Counter[str] = Counter()  # owner_id -> documents in work here
        self._claiming = asyncio.Lock()
        # One worker is always left for other users (when there are two or more).
        self._per_owner = max(1, settings.ingest_workers - 1)

    @property
    def pool(self) -> ExtractionPool:
        """The extraction sandbox (tests look at its workers)."""
        return self._pool

    async def start(self) -> None:
        """Queue documents a crash left `processing` again, then start the workers."""
        if self._single_node:
            # No other node can hold a claim: take over the last run's work at once.
            count = await self._files.release_all()
            if count:
                log.info("%d documents left processing are queued again", count)
        for n in range(self._settings.ingest_workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"ingest-{n}"))

    def wake(self) -> None:
        """New work was stored: let an idle worker look now, not at its next poll."""
        self._wakeup.set()

    def cancel(self, file_id: str) -> None:
        """The document is being deleted: stop its work here now (its extraction is killed)."""
        work = self._running.get(file_id)
        if work is not None:
            work.cancel()

    async def close(self) -> None:
        """Stop the workers and kill the sandbox; an interrupted document stays `processing`."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._pool.close()

    def _full_owners(self) -> list[str]:
        return [owner for owner, n in self._busy.items() if n >= self._per_owner]

    async def _work(self) -> None:
        while True:
            # Cleared before claiming: a wake() after this sees its record in the claim.
            self._wakeup.clear()
            # One claim at a time on this node: a claim sees the owners taken by the last.
            async with self._claiming:
                try:
                    record = await self._files.claim(
                        self._node_id, self._lease, skip_owners=self._full_owners())
                except Exception:
                    log.exception("could not claim a document to ingest")
                    record = None
                if record is not None:
                    self._busy[record.owner_id] += 1
            if record is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll)
                continue
            try:
                await self._ingest(record)
            except Exception:  # e.g. the vector store is down while cleaning up
                log.exception("ingestion of %s stopped", record.file_id)
            finally:
                self._busy[record.owner_id] -= 1
                if self._busy[record.owner_id] <= 0:
                    del self._busy[record.owner_id]
                self._wakeup.set()  # a worker that skipped this owner may claim now

    async def _ingest(self, record: FileRecord) -> None:
        work = asyncio.create_task(self._process(record), name=f"ingest-{record.file_id}")
        self._running[record.file_id] = work
        keeper = asyncio.create_task(self._keep_lease(record.file_id, work), name="ingest-lease")
        try:
            await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this worker is being stopped
            # Its document was deleted (here or on another node): nothing to keep.
            await self._drop_vectors(record)
        except _Gone:
            await self._drop_vectors(record)
        except AppError as exc:
            if exc.code in RETRYABLE and record.attempts < MAX_ATTEMPTS:
                log.warning("ingesting %s failed (%s); retrying later", record.file_id, exc)
                await self._files.retry_later(record.file_id, 15.0 * record.attempts)
            else:
                await self._fail(record, exc.message, exc.code)
        except Exception as exc:
            log.exception("ingesting %s failed", record.file_id)
            await self._fail(record, f"internal error: {type(exc).__name__}", INTERNAL)
        finally:
            self._running.pop(record.file_id, None)
            keeper.cancel()
            work.cancel()
            await asyncio.gather(keeper, work, return_exceptions=True)

    async def _keep_lease(self, file_id: str, work: asyncio.Task[None]) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                if not await self._files.renew(file_id, self._lease):
                    work.cancel()  # deleted (maybe on another node): stop reading it
                    return
            except Exception:
                log.warning("could not renew the lease of %s", file_id, exc_info=True)

    async def _process(self, record: FileRecord) -> None:
        if record.attempts > MAX_ATTEMPTS:
            raise invalid(f"gave up after {MAX_ATTEMPTS} attempts")
        await self._progress(record, {"progress": 0.0})
        if record.size > self._limits.max_index_mb * 1024 * 1024:
            raise invalid(f"too large to index (over {self._limits.max_index_mb:g} MB)")
        chunks = await self._extract(record)
        if not chunks:
            raise invalid("no text found in the file")
        if len(chunks) > self._limits.max_chunks_per_document:
            raise invalid(
                f"too much text to index ({len(chunks)} chunks; at most "
                f"{self._limits.max_chunks_per_document})"
            )
        if record.attempts > 1:
            await self._drop_vectors(record)  # leftovers of an interrupted attempt
        await self._progress(record, {"progress": 0.1, "chunks": len(chunks)})
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start : start + EMBED_BATCH]
            values = await self._embedder.embed([chunk.text for chunk in batch])
            items = [
                VectorItem(f"{record.file_id}:{chunk.index}", vector,
                           chunk_metadata(record, chunk))
                for chunk, vector in zip(batch, values, strict=True)
            ]
            await self._vectors.upsert(record.namespace, items)
            done = start + len(batch)
            if done < len(chunks):
                await self._progress(record, {"progress": round(0.1 + 0.9 * done / len(chunks), 3)})
        await self._progress(
            record, {"status": "ready", "progress": 1.0, "error": None, "error_code": None})
        self._metrics.ingestion.labels(outcome="ready").inc()
        log.info("ingested %s (%s): %d chunks", record.file_id, record.filename, len(chunks))

    async def _extract(self, record: FileRecord) -> list[Chunk]:
        """Copy the blob to a temp file; the sandbox extracts and chunks it."""
        fd, name = await acquire_in_thread(  # not left behind by a cancelled ingestion
            lambda: tempfile.mkstemp(prefix="parlour-ingest-"), _discard_temp)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                blob = await self._blobs.get(record.key)
                try:
                    async for chunk in blob.chunks:
                        await asyncio.to_thread(_write, handle, chunk)
                finally:
                    await blob.aclose()
            self._metrics.extractions_running.inc()
            try:
                return await self._pool.extract(
                    ExtractJob(record.filename, record.content_type, path))
            finally:
                self._metrics.extractions_running.dec()
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def _progress(self, record: FileRecord, fields: dict[str, Any]) -> None:
        updated = await self._files.update_state(record.file_id, fields)
        if updated is None:
            raise _Gone
        await self._emitter.document_status(updated.owner_id, updated.status_payload())

    async def _fail(self, record: FileRecord, reason: str, code: str) -> None:
        log.info("ingesting %s (%s) failed: %s", record.file_id, record.filename, reason)
        self._metrics.ingestion.labels(outcome="failed").inc()
        with contextlib.suppress(Exception):
            await self._drop_vectors(record)
        try:
            updated = await self._files.update_state(
                record.file_id, {"status": "failed", "error": reason, "error_code": code}
            )
            if updated is not None:
                await self._emitter.document_status(updated.owner_id, updated.status_payload())
        except Exception:
            log.exception("could not mark %s failed", record.file_id)

    async def _drop_vectors(self, record: FileRecord) -> None:
        await self._vectors.delete_where(record.namespace, {"document_id": record.file_id})


def _write(handle: IO[bytes], data: bytes) -> None:
    handle.write(data)


def _discard_temp(made: tuple[int, str]) -> None:
    """Close and remove a temp file nobody took (its ingestion was cancelled meanwhile)."""
    os.close(made[0])
    with contextlib.suppress(OSError):
        os.unlink(made[1])
