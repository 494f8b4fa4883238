"""Chat files and knowledge-base documents: streamed to the blob store, recorded, ingested."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from app.config import LimitsSettings
from app.errors import (
    FORBIDDEN,
    PAYLOAD_TOO_LARGE,
    AppError,
    error_from_exception,
    invalid,
    not_found,
)
from app.filetypes import OCTET, base_type, guess_by_name, is_blocked, sniff, with_head
from app.ids import new_id
from app.media.attachments import Attachment
from app.metrics import Metrics
from app.models import Principal, utcnow
from app.rag.extract import ACCEPTED_EXTENSIONS, content_type_for, document_kind
from app.rooms import RoomService
from storage.blobs import BlobStore, BlobStream
from storage.files import FileRecord, FileStore, Scope
from storage.vectors import VectorStore

log = logging.getLogger(__name__)

MAX_FILENAME_CHARS = 200
ACCEPTED = ", ".join(sorted({ext.lstrip(".") for ext in ACCEPTED_EXTENSIONS}))
_KIND_TYPES = {"text": "text/plain", "html": "text/html"}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"]')


@dataclass(slots=True)
class UploadPart:
    """One file of a multipart upload as the transport hands it over."""

    filename: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes]


def safe_filename(raw: str | None) -> str:
    """A display name: the last path part, without control characters or quotes."""
    # Clients percent-encode some characters (HTML forms: `"` and line breaks; aiohttp: all).
    name = unquote(raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("", unicodedata.normalize("NFC", name))
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    name = name.strip().lstrip(".").strip()
    if not name:
        return "file"
    if len(name) > MAX_FILENAME_CHARS:
        suffix = PurePosixPath(name).suffix[:16]
        name = name[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return name


def stored_content_type(filename: str, sent: str | None) -> str:
    """The content type to keep: by extension when known, else the kind's canonical type."""
    if PurePosixPath(filename).suffix.lower() in ACCEPTED_EXTENSIONS:
        return content_type_for(filename)
    kind = document_kind(filename, sent)
    return _KIND_TYPES.get(kind or "", (sent or "").split(";")[0].strip().lower())


def ingest_kind(filename: str, sent: str | None, sniffed: str | None) -> str | None:
    """The extractable kind ('text', 'html', 'pdf', 'docx') or None: stored, not ingested.

    The name (or the client's type) says what the file claims to be; the bytes must agree
    (a PNG named notes.txt is an image, and is not read as text).
    """
    kind = document_kind(filename, sent) or document_kind("", sniffed)
    if kind is None or sniffed is None:
        return kind
    sniffed = base_type(sniffed)
    agrees = {
        "pdf": sniffed == "application/pdf",
        "docx": "zip" in sniffed or "officedocument" in sniffed,
        "text": sniffed.startswith("text/") or sniffed in _TEXTUAL,
        "html": sniffed.startswith("text/") or sniffed in _TEXTUAL,
    }
    return kind if agrees.get(kind, False) else None


_TEXTUAL = frozenset({"application/json", "application/xml", "application/xhtml+xml"})


def file_json(record: FileRecord) -> dict[str, Any]:
    """A chat file as REST shows it."""
    data = document_json(record)
    data.update(file_id=record.file_id, chat_id=record.chat_id, uploaded_by=record.owner_id)
    return data


def document_json(record: FileRecord) -> dict[str, Any]:
    """A knowledge-base document as REST shows it."""
    data: dict[str, Any] = {
        "document_id": record.file_id, "filename": record.filename,
        "content_type": record.content_type, "size": record.size, "sha256": record.sha256,
        "status": record.status, "progress": record.progress, "chunks": record.chunks,
        "created_at": record.created_at.isoformat(),
    }
    if record.error:
        data["error"] = record.error
        data["error_code"] = record.error_code or "invalid_payload"
    return data


class RoomFiles:
    """What rooms ask of files (no room access checks: the room service made them).

    Apart from FileService, which needs the room service, so that the room service can
    be built with this in its constructor.
    """

    def __init__(
        self, files: FileStore, blobs: BlobStore, vectors: VectorStore,
        cancel: Callable[[str], None],
    ) -> None:
        self._files = files
        self._blobs = blobs
        self._vectors = vectors
        self._cancel = cancel  # stops a file's ingestion on this node

    async def files_of_chat(self, chat_id: str, file_ids: list[str]) -> bool:
        """Whether every id is a file of the room (for messages that attach files)."""
        unique = list(set(file_ids))
        return await self._files.count_in_chat(chat_id, unique) == len(unique)

    async def attachments(self, chat_id: str, file_ids: list[str]) -> list[FileRecord]:
        """The records of a message's files, in its order; not_found if one is not the room's."""
        records: list[FileRecord] = []
        for file_id in dict.fromkeys(file_ids):
            record = await self._files.get(file_id)
            if record is None or record.scope != "chat" or record.chat_id != chat_id:
                raise not_found("file")
            records.append(record)
        return records

    async def read_attachments(self, chat_id: str, file_ids: list[str]) -> list[Attachment]:
        """A message's files with their bytes (each is at most limits.max_upload_mb)."""
        attachments: list[Attachment] = []
        for record in await self.attachments(chat_id, file_ids):
            blob = await self._blobs.get(record.key)
            parts: list[bytes] = []
            try:
                async for chunk in blob.chunks:
                    parts.append(chunk)
            finally:
                await blob.aclose()
            attachments.append(Attachment(
                record.filename, record.content_type, b"".join(parts),
                searchable=record.status == "ready",
            ))
        return attachments

    async def on_room_deleted(self, chat_id: str) -> None:
        """Delete every file of a deleted room: vectors (messages too), blobs, records."""
        records = await self._files.mark_chat_deleting(chat_id)
        for record in records:
            self._cancel(record.file_id)
        await self._vectors.delete_where(f"chat:{chat_id}", {"chat_id": chat_id})
        for record in records:
            await self._blobs.delete(record.key)
            await self._files.delete(record.file_id)


class FileService:
    """Uploads, listings, downloads and deletes of chat files and documents."""

    def __init__(
        self, limits: LimitsSettings, files: FileStore, blobs: BlobStore, vectors: VectorStore,
        rooms: RoomService, metrics: Metrics, wake: Callable[[], None],
        cancel: Callable[[str], None],
    ) -> None:
        self._limits = limits
        self._files = files
        self._blobs = blobs
        self._vectors = vectors
        self._rooms = rooms
        self._metrics = metrics
        self._wake = wake  # tells the ingestion workers there is new work
        self._cancel = cancel  # stops a deleted file's ingestion on this node

    # -- chat files -----------------------------------------------------------------------

    async def upload_to_chat(
        self, principal: Principal, chat_id: str, parts: AsyncIterator[UploadPart]
    ) -> list[FileRecord]:
        """Store the files of an upload in a room (members who may write)."""
        await self._rooms.load(principal, chat_id, write=True)
        return await self._store_all(principal, parts, "chat", chat_id)

    async def _member_of(self, principal: Principal, chat_id: str) -> None:
        # Files are for members only, even in a public room.
        room = await self._rooms.load(principal, chat_id)
        if room.member(principal.user_id) is None:
            raise not_found("room")

    async def list_chat(self, principal: Principal, chat_id: str) -> list[FileRecord]:
        """A room's files."""
        await self._member_of(principal, chat_id)
        return await self._files.list_chat(chat_id)

    async def open_chat_file(
        self, principal: Principal, chat_id: str, file_id: str
    ) -> tuple[FileRecord, BlobStream]:
        """A room's file and its bytes."""
        await self._member_of(principal, chat_id)
        record = await self._files.get(file_id)
        if record is None or record.scope != "chat" or record.chat_id != chat_id:
            raise not_found("file")
        return record, await self._blobs.get(record.key)

    async def delete_chat_file(self, principal: Principal, chat_id: str, file_id: str) -> None:
        """Delete a room's file with its blob and vectors (its uploader or the room owner).

        A missing file is not an error.
        """
        room = await self._rooms.load(principal, chat_id, write=True)
        record = await self._files.get(file_id, deleting=True)
        if record is not None and record.scope == "chat" and record.chat_id == chat_id:
            if principal.user_id not in (record.owner_id, room.owner_id):
                raise AppError(FORBIDDEN, "only the file's uploader or the room owner can "
                                          "delete it")
            await self._remove(record.file_id)

    # -- documents ------------------------------------------------------------------------

    async def upload_documents(
        self, principal: Principal, parts: AsyncIterator[UploadPart]
    ) -> list[FileRecord]:
        """Store documents in the caller's knowledge base."""
        return await self._store_all(principal, parts, "user", None)

    async def list_documents(self, principal: Principal) -> list[FileRecord]:
        """The caller's documents."""
        return await self._files.list_documents(principal.user_id)

    async def get_document(self, principal: Principal, document_id: str) -> FileRecord:
        """One of the caller's documents; not_found for anyone else's."""
        record = await self._files.get(document_id)
        if record is None or record.scope != "user" or record.owner_id != principal.user_id:
            raise not_found("document")
        return record

    async def open_document(
        self, principal: Principal, document_id: str
    ) -> tuple[FileRecord, BlobStream]:
        """One of the caller's documents and its bytes."""
        record = await self.get_document(principal, document_id)
        return record, await self._blobs.get(record.key)

    async def delete_document(self, principal: Principal, document_id: str) -> None:
        """Delete one of the caller's documents with its blob and vectors.

        Idempotent like chat files: a document already gone (or never the caller's)
        is not an error, and says nothing about other users' ids.
        """
        record = await self._files.get(document_id, deleting=True)
        if record is not None and record.scope == "user" and record.owner_id == principal.user_id:
            await self._remove(record.file_id)

    # -- storing --------------------------------------------------------------------------

    async def _store_all(
        self, principal: Principal, parts: AsyncIterator[UploadPart], scope: Scope,
        chat_id: str | None,
    ) -> list[FileRecord]:
        stored: list[FileRecord] = []
        try:
            async for part in parts:
                if len(stored) >= self._limits.max_files_per_upload:
                    raise invalid(f"files: at most {self._limits.max_files_per_upload} per upload")
                stored.append(await self._store_one(principal, part, scope, chat_id))
            if not stored:
                raise invalid("files: the upload holds no file")
        except BaseException as exc:
            # Nothing half-done: the files already stored by this request go too.
            await asyncio.shield(self._discard(stored))
            self._metrics.uploads.labels(outcome=error_from_exception(exc).code).inc()
            raise
        self._metrics.uploads.labels(outcome="stored").inc(len(stored))
        self._wake()
        return stored

    async def _store_one(
        self, principal: Principal, part: UploadPart, scope: Scope, chat_id: str | None
    ) -> FileRecord:
        filename = safe_filename(part.filename)
        head, chunks = await with_head(part.chunks)
        sniffed = sniff(head)
        if is_blocked(filename, (sniffed, part.content_type), self._limits.blocked_upload_types):
            raise invalid(
                f"files: {filename!r} is a blocked file type ({sniffed or 'by its name'}); "
                "executables and scripts are not accepted (limits.blocked_upload_types)"
            )
        kind = ingest_kind(filename, part.content_type, sniffed)
        suffix = PurePosixPath(filename).suffix.lower()
        if scope == "user" and (kind is None or (suffix and suffix not in ACCEPTED_EXTENSIONS)):
            # The knowledge base holds what can be searched; chats take any file.
            raise invalid(f"files: unsupported type of {filename!r}; accepted: {ACCEPTED}")
        file_id = new_id()
        # The key never comes from the filename.
        key = f"chats/{chat_id}/{file_id}" if scope == "chat" else (
            f"users/{principal.user_id}/{file_id}")
        limit = int(self._limits.max_upload_mb * 1024 * 1024)
        digest = hashlib.sha256()

        async def counted() -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in chunks:
                seen += len(chunk)
                if seen > limit:
                    raise AppError(
                        PAYLOAD_TOO_LARGE,
                        f"{filename}: larger than {self._limits.max_upload_mb:g} MB",
                    )
                digest.update(chunk)
                yield chunk

        if kind is not None:
            claimed = part.content_type if document_kind(filename, part.content_type) else sniffed
            content_type = stored_content_type(filename, claimed)
        else:  # kept as it is: typed by its bytes, else by its name
            content_type = sniffed or guess_by_name(filename) or OCTET
        try:
            size = await self._blobs.put(key, counted(), content_type)
            if size == 0:
                raise invalid(f"files: {filename} is empty")
            record = FileRecord(
                file_id=file_id, scope=scope, chat_id=chat_id, owner_id=principal.user_id,
                filename=filename, content_type=content_type, size=size,
                sha256=digest.hexdigest(), key=key, created_at=utcnow(),
                status="processing" if kind is not None else "stored",
                progress=0.0 if kind is not None else 1.0,
            )
            await self._files.insert(record)
        except BaseException:
            await asyncio.shield(self._forget_blob(key))
            raise
        self._metrics.upload_bytes.inc(size)
        return record

    async def _forget_blob(self, key: str) -> None:
        try:
            await self._blobs.delete(key)
        except Exception:
            log.warning("could not delete blob %s of a failed upload", key, exc_info=True)

    async def _discard(self, records: list[FileRecord]) -> None:
        for record in records:
            try:
                await self._remove(record.file_id)
            except Exception:
                log.warning("could not undo upload of %s", record.file_id, exc_info=True)

    async def _remove(self, file_id: str) -> None:
        """Hide the record, then delete vectors and blob, then the record (retry-safe)."""
        record = await self._files.mark_deleting(file_id)
        if record is None:
            return
        self._cancel(record.file_id)
        await self._vectors.delete_where(record.namespace, {"document_id": record.file_id})
        await self._blobs.delete(record.key)
        await self._files.delete(record.file_id)
