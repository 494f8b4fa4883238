"""Speech routes: `/api/v1/audio/transcriptions` and `/api/v1/run/audio` (a spoken answer)."""

from __future__ import annotations

import logging
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from aiohttp import web

from app.errors import PROVIDER_ERROR, AppError, error_from_exception, invalid
from app.files import safe_filename
from app.speech.base import CONTENT_TYPES
from app.speech.service import SpeechService
from handlers.ai import run_events
from handlers.common import json_response, principal, services
from handlers.multipart import CappedMultipart
from handlers.run_input import read_part, read_run_input, run_caps

log = logging.getLogger(__name__)

TRANSCRIPT_HEADER_CHARS = 1000


def speech_service(request: web.Request) -> SpeechService:
    svc = services(request).speech
    if svc is None:
        raise AppError("unavailable", "speech is not configured")
    return svc


async def transcriptions(request: web.Request) -> web.Response:
    """Multipart `file` → `{text}`."""
    who = principal(request)
    if not request.content_type.startswith("multipart/"):
        raise invalid("body: expected multipart/form-data with a `file` part")
    limit = int(services(request).settings.limits.max_upload_mb * 1024 * 1024)
    body = CappedMultipart(request, run_caps(request))
    found: tuple[str, str, bytes] | None = None
    async for part in body.parts():
        if part.name == "file" and part.filename is not None and found is None:
            name = safe_filename(part.filename or "audio")
            data = await read_part(body, part, limit, name)
            found = (name, part.headers.get("Content-Type") or "", data)
        else:
            await body.drain(part)
    if found is None:
        raise invalid("file: no part named `file`; e.g. curl -F file=@question.wav")
    name, mime, data = found
    text = await speech_service(request).transcribe(who, data, mime or "audio/wav", name)
    return json_response({"text": text})


async def run_audio(request: web.Request) -> web.StreamResponse:
    """Ask (like /run; the question may be audio) and hear the answer, streamed."""
    who = principal(request)
    speech = speech_service(request)
    voice, fmt = speech.voice(request.query.get("format"))
    req = await read_run_input(request)
    result = await _collect(await run_events(request, who, req))
    text = str(result.get("answer") or "")
    message_id = result.get("message_id")
    saved = f" (the text answer is saved as message {message_id})" if message_id else ""
    if not text.strip():
        raise AppError(PROVIDER_ERROR, f"the model gave an empty answer{saved}")
    audio = speech.speak(who, voice, text, fmt)
    async with aclosing(audio):
        try:
            first = await anext(audio)
        except StopAsyncIteration:
            raise AppError(PROVIDER_ERROR, f"{voice.name}: no audio{saved}") from None
        except AppError as exc:
            raise AppError(exc.code, f"{exc.message}{saved}") from exc
        headers = {
            "Content-Type": CONTENT_TYPES[fmt],
            "X-Parlour-Transcript": quote(text[:TRANSCRIPT_HEADER_CHARS], safe=""),
            "Cache-Control": "no-store",
        }
        if message_id:
            headers["X-Parlour-Message-Id"] = str(message_id)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        await response.write(first)
        try:
            async for chunk in audio:
                await response.write(chunk)
        except Exception as exc:
            # The status is sent: the client sees the stream broken, not a short success.
            log.warning("spoken answer cut off: %s", error_from_exception(exc).message)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response


async def _collect(events: Any) -> dict[str, Any]:
    """The whole answer (its completion is closed before speaking starts)."""
    parts: list[str] = []
    async with aclosing(events):
        async for item in events:
            if "delta" in item:
                parts.append(item["delta"])
            elif item.get("done"):
                item.setdefault("answer", "".join(parts))
                return dict(item)
    raise AppError(PROVIDER_ERROR, "the reply ended without a result")


def setup(app: web.Application) -> None:
    """Register the speech routes."""
    app.router.add_post("/api/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/api/v1/run/audio", run_audio)
