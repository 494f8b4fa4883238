"""What a file is, judged from its bytes: sniffing, blocked types, inline-safe types.

The client's filename and Content-Type are hints only: whatever is ingested or sent to a
model is typed by its first bytes (puremagic, plus a few signatures checked here first
so the common media types never depend on puremagic's ranking of candidates).
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterator, Iterable
from pathlib import PurePosixPath

import puremagic

log = logging.getLogger(__name__)

SNIFF_BYTES = 8192  # of a file's start, enough for every signature used here
OCTET = "application/octet-stream"

# Signatures checked before puremagic: (offset, bytes, content type).
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"MZ", "application/x-msdownload"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (0, b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
)
# RIFF containers: the form type at offset 8.
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
# ISO base media (mp4, m4a, mov): the brand after `ftyp` at offset 4.
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"F4A "}
_QUICKTIME_BRANDS = {b"qt  "}

# Types whose bytes a browser shows without running anything of ours: served inline.
INLINE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
    "audio/wav", "audio/mpeg", "audio/ogg", "audio/flac", "audio/mp4", "audio/webm",
    "audio/aac", "video/mp4", "video/webm", "video/ogg", "video/quicktime",
})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def sniff(head: bytes) -> str | None:
    """The content type of a file starting with `head`, or None when nothing matches."""
    if not head:
        return None
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return "audio/mp4"
        return "video/quicktime" if brand in _QUICKTIME_BRANDS else "video/mp4"
    if head[:4] == b"PK\x03\x04":
        return _zip_type(head)
    if head[:2] == b"\xff\xfb" or head[:2] == b"\xff\xf3" or head[:2] == b"\xff\xf2":
        return "audio/mpeg"
    try:
        found = puremagic.from_string(head, mime=True)
    except (puremagic.PureError, ValueError):
        return None
    except Exception:  # puremagic's heuristics on odd input: a sniffing miss, not a failure
        log.debug("puremagic failed on a file head", exc_info=True)
        return None
    return found or None


_OFFICE = ((b"word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
           (b"xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
           (b"ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation"))


def _zip_type(head: bytes) -> str:
    # An Office file is a zip whose first entries name its parts; anything else is a zip.
    if b"[Content_Types].xml" in head or b"_rels/" in head:
        for marker, kind in _OFFICE:
            if marker in head:
                return kind
    return "application/zip"


def guess_by_name(filename: str) -> str | None:
    """The content type the extension suggests, if any."""
    guessed, _ = mimetypes.guess_type(filename)
    return guessed


def base_type(content_type: str | None) -> str:
    """`image/png` of `image/png; charset=x`, lower case; '' for None."""
    return (content_type or "").split(";")[0].strip().lower()


def is_blocked(filename: str, content_types: Iterable[str | None], blocked: Iterable[str]) -> bool:
    """Whether the name's extension or any of the types is in `limits.blocked_upload_types`.

    Entries starting with a dot are extensions (`.exe`), the others content types.
    """
    rules = {rule.strip().lower() for rule in blocked if rule.strip()}
    suffixes = [s.lower() for s in PurePosixPath(filename.lower()).suffixes]
    if any(s in rules for s in suffixes[-1:]):
        return True
    return any(base_type(t) in rules for t in content_types if t)


def served_inline(content_type: str) -> bool:
    """Whether a download may be shown by the browser (images, audio, video only)."""
    return base_type(content_type) in INLINE_TYPES


async def with_head(
    chunks: AsyncIterator[bytes], size: int = SNIFF_BYTES
) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first `size` bytes (fewer if the stream is shorter), and the whole stream again."""
    buffered: list[bytes] = []
    seen = 0
    iterator = aiter(chunks)
    while seen < size:
        chunk = await anext(iterator, None)
        if chunk is None:
            break
        buffered.append(chunk)
        seen += len(chunk)

    async def replay() -> AsyncIterator[bytes]:
        for chunk in buffered:
            yield chunk
        async for chunk in iterator:
            yield chunk

    return b"".join(buffered)[:size], replay()
