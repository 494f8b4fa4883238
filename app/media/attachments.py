"""Attachments turned into what a model reads: image parts, transcripts, document text.

Every attachment is typed by its bytes. Images go as image parts (resized) to models
whose catalog entry has `vision: true` (models the catalog does not list are trusted
with them: the operator chose that server); audio goes as its transcript, video as its
audio transcript plus a few frames; documents as their text (the start of it when long:
a chat's ingested files are also searched, so the relevant passages come as sources);
anything else is named, so the model knows it was there.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Protocol

from app.errors import INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError
from app.filetypes import IMAGE_TYPES, base_type, guess_by_name, sniff
from app.llm.base import ImagePart
from app.llm.catalog import ModelInfo
from app.media.images import prepare_image
from app.rag.extract import document_kind, extract_text
from storage.files import FileRecord

MAX_IMAGE_BYTES = 20 * 1024 * 1024
DOCUMENT_CHARS = 12_000  # of one document's text put in the turn
MAX_FRAMES = 4

Kind = Literal["image", "audio", "video", "document", "other"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """One file given with a question; `content_type` is the client's claim (a hint)."""

    filename: str
    content_type: str | None
    data: bytes
    searchable: bool = False  # an ingested chat file: retrieval finds its passages


@dataclass(frozen=True, slots=True)
class ModelInput:
    """What the attachments add to the user's turn."""

    text: str = ""
    images: tuple[ImagePart, ...] = ()


class Transcriber(Protocol):
    """Speech to text for audio attachments (app.speech)."""

    async def transcribe(self, audio: bytes, mime: str, filename: str) -> str: ...


class VideoReader(Protocol):
    """A video's audio track and frames (app.media.video)."""

    async def read(self, data: bytes, filename: str, frames: int) -> tuple[bytes | None,
                                                                          list[ImagePart]]: ...


class ImageDecoder(Protocol):
    """Checks, resizes and re-encodes an image (app.media.sandbox, in a worker process)."""

    async def image(self, data: bytes, filename: str) -> ImagePart: ...


class ThreadImages:
    """ImageDecoder in a worker thread of this process (tests and tools; not the server)."""

    async def image(self, data: bytes, filename: str) -> ImagePart:
        return await asyncio.to_thread(prepare_image, data, filename)


class ModelLookup(Protocol):
    """The catalog entry of a model id, if listed (ProviderRegistry.model_info)."""

    def model_info(self, model_id: str) -> ModelInfo | None: ...


def kind_of(content_type: str | None, filename: str = "") -> Kind:
    """What a file is to a model, by its (sniffed) type."""
    ctype = base_type(content_type)
    if ctype in IMAGE_TYPES:
        return "image"
    if ctype.startswith("audio/"):
        return "audio"
    if ctype.startswith("video/"):
        return "video"
    if document_kind(filename, ctype or None) is not None:
        return "document"
    return "other"


def attachment_type(attachment: Attachment) -> str | None:
    """The type by the bytes, else by the name when the bytes say nothing (plain text)."""
    sniffed = sniff(attachment.data[:8192])
    if sniffed is not None:
        return sniffed
    by_name = guess_by_name(attachment.filename)
    if by_name is not None and (by_name.startswith("text/") or by_name.endswith("json")):
        return by_name
    if document_kind(attachment.filename, attachment.content_type) in ("text", "html"):
        return base_type(attachment.content_type) or "text/plain"
    return None


_MEDIA = ("image", "audio", "video")


def media_kind(attachment: Attachment, ctype: str | None) -> Kind:
    """The kind by the bytes, checked against what the file claims to be.

    A file named or sent as an image, audio or video whose bytes are not one is
    `invalid_payload` naming it. Audio in a video container (a browser's audio/webm
    recording) is audio.
    """
    kind = kind_of(ctype, attachment.filename)
    claimed_type = base_type(attachment.content_type)
    if claimed_type in ("", "application/octet-stream"):
        claimed_type = guess_by_name(attachment.filename) or ""
    claimed = kind_of(claimed_type, attachment.filename)
    if claimed == "audio" and kind == "video":
        return "audio"
    if claimed in _MEDIA and kind != claimed and not (claimed == "video" and kind == "audio"):
        raise AppError(INVALID_PAYLOAD,
                       f"{attachment.filename}: the file is not a readable {claimed} file")
    if claimed == "video" and kind == "audio":
        return "audio"
    return kind


def supports_images(models: ModelLookup, model_id: str) -> bool:
    """Whether `model_id` may be given images."""
    info = models.model_info(model_id)
    return info is None or info.vision


def no_vision(model_id: str) -> AppError:
    return AppError(
        INVALID_PAYLOAD,
        f"model {model_id} cannot read images (its catalog entry has no vision); "
        "choose a vision model such as openai:gpt-4o-mini",
    )


def check_sizes(filename: str, kind: Kind, size: int) -> None:
    """`invalid_payload` for an empty file, `payload_too_large` for an image over 20 MB."""
    if size == 0:
        raise AppError(INVALID_PAYLOAD, f"{filename}: the file is empty")
    if kind == "image" and size > MAX_IMAGE_BYTES:
        raise AppError(PAYLOAD_TOO_LARGE, f"{filename}: images are limited to 20 MB")


class AttachmentReader:
    """Reads attachments for one model call; heavy work runs off the event loop."""

    def __init__(
        self, models: ModelLookup, transcriber: Transcriber | None = None,
        video: VideoReader | None = None, images: ImageDecoder | None = None,
    ) -> None:
        self._models = models
        self._transcriber = transcriber
        self._video = video
        self._images = images or ThreadImages()

    def check_types(self, model_id: str, items: Sequence[tuple[str, str, int]]) -> None:
        """Before anything is stored: (filename, content type, size) against the model."""
        for filename, content_type, size in items:
            kind = kind_of(content_type, filename)
            if kind == "video" and content_type == "video/webm":
                continue  # may be audio only (a recording): decided when it is read
            check_sizes(filename, kind, size)
            if kind in ("image", "video") and not supports_images(self._models, model_id):
                raise no_vision(model_id)

    async def read(self, attachments: Sequence[Attachment], model_id: str) -> ModelInput:
        """The text and images the attachments add to the question."""
        texts: list[str] = []
        images: list[ImagePart] = []
        for attachment in attachments:
            ctype = attachment_type(attachment)
            kind = media_kind(attachment, ctype)
            check_sizes(attachment.filename, kind, len(attachment.data))
            if kind == "image" and not supports_images(self._models, model_id):
                raise no_vision(model_id)
            label = f"[Attachment: {attachment.filename} ({ctype or 'unknown type'})]"
            if kind == "image":
                images.append(await self._images.image(attachment.data, attachment.filename))
                texts.append(f"{label} shown as an image.")
            elif kind == "audio":
                transcript = await self._transcribe(attachment, ctype or "audio/wav")
                texts.append(f"{label} transcript:\n{transcript}")
            elif kind == "video":
                transcript, frames = await self._read_video(attachment)
                if frames and not supports_images(self._models, model_id):
                    raise no_vision(model_id)
                images.extend(frames)
                texts.append(f"{label} {len(frames)} frames shown as images; audio "
                             f"transcript:\n{transcript or '(no speech)'}")
            elif kind == "document":
                texts.append(f"{label}\n{await self._document_text(attachment, ctype)}")
            else:
                texts.append(f"{label} {len(attachment.data)} bytes; its content cannot be "
                             "read here.")
        return ModelInput("\n\n".join(texts), tuple(images))

    async def _transcribe(self, attachment: Attachment, mime: str) -> str:
        if self._transcriber is None:
            raise AppError(
                "unavailable",
                f"{attachment.filename}: no speech recognition is configured for audio "
                "(set OPENAI_API_KEY or audio.stt_model)",
            )
        return await self._transcriber.transcribe(attachment.data, mime, attachment.filename)

    async def _read_video(self, attachment: Attachment) -> tuple[str, list[ImagePart]]:
        if self._video is None:
            raise AppError("unavailable", f"{attachment.filename}: video is not supported here")
        audio, frames = await self._video.read(attachment.data, attachment.filename, MAX_FRAMES)
        transcript = ""
        if audio is not None and self._transcriber is not None:
            transcript = await self._transcriber.transcribe(
                audio, "audio/wav", f"{attachment.filename}.wav")
        return transcript, frames

    async def _document_text(self, attachment: Attachment, ctype: str | None) -> str:
        # Read as what the bytes are: a PDF named notes.txt is read as a PDF.
        name = "" if document_kind("", ctype) is not None else attachment.filename
        pages = await asyncio.to_thread(partial(
            _extract, name, attachment.filename, ctype or attachment.content_type,
            attachment.data))
        text = "\n\n".join(page for page in pages if page.strip())
        if len(text) <= DOCUMENT_CHARS:
            return text
        more = ("the passages relevant to the question are given as sources"
                if attachment.searchable else "the rest is not shown")
        rest = len(text) - DOCUMENT_CHARS
        return f"{text[:DOCUMENT_CHARS]}\n[... {rest} more characters; {more}]"


def _extract(name: str, filename: str, content_type: str | None, data: bytes) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="parlour-attach-") as tmp:
        path = Path(tmp) / "file"
        path.write_bytes(data)
        try:
            return [page.text for page in extract_text(name, content_type, path)]
        except AppError as exc:
            raise AppError(INVALID_PAYLOAD, f"{filename}: {exc.message}") from exc
        except Exception as exc:  # parsers fail on hostile input in many ways
            raise AppError(INVALID_PAYLOAD, f"{filename}: could not read it ({exc})") from exc


class ChatFiles(Protocol):
    """A room's files as messages attach them (app.files.RoomFiles)."""

    async def attachments(self, chat_id: str, file_ids: list[str]) -> list[FileRecord]: ...

    async def read_attachments(self, chat_id: str, file_ids: list[str]) -> list[Attachment]: ...


class ChatAttachments:
    """The files of a room message, checked when it is sent and read when it is answered."""

    def __init__(self, files: ChatFiles, reader: AttachmentReader) -> None:
        self._files = files
        self.reader = reader

    async def check(self, chat_id: str, file_ids: Sequence[str], model_id: str) -> None:
        """Refuse (before the message is stored) what `model_id` cannot be given."""
        records = await self._files.attachments(chat_id, list(file_ids))
        self.reader.check_types(model_id, [(r.filename, r.content_type, r.size) for r in records])

    async def model_input(
        self, chat_id: str, file_ids: Sequence[str], model_id: str
    ) -> ModelInput:
        """What the message's files add to its turn."""
        await self.check(chat_id, file_ids, model_id)
        return await self.reader.read(
            await self._files.read_attachments(chat_id, list(file_ids)), model_id)
