"""A loopback stand-in for OpenAI's chat, transcription and speech endpoints.

Chat completions stream scripted turns (tests.llm_tool_stubs.OpenAIToolStub); the audio
endpoints answer fixed text / generated PCM. Every request is recorded so tests can
assert what Parlour sent: the image parts, the audio bytes, the text to speak.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.llm_tool_stubs import OpenAIToolStub


def pcm_tone(seconds: float = 0.2, rate: int = 24_000) -> bytes:
    """PCM16 mono samples of a 440 Hz tone."""
    return b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
                    for i in range(int(seconds * rate)))


@dataclass
class OpenAIMediaStub(OpenAIToolStub):
    transcript: str = "what is the capital of France"
    transcriptions: list[dict[str, Any]] = field(default_factory=list)
    speeches: list[dict[str, Any]] = field(default_factory=list)
    speech_status: int = 200  # 5xx: the speech endpoint is down

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speech)
        return app

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField), form
        self.transcriptions.append({
            "model": form.get("model"), "filename": upload.filename,
            "content_type": upload.content_type, "data": upload.file.read(),
        })
        return web.json_response({"text": self.transcript})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.speeches.append(body)
        if self.speech_status != 200:
            return web.json_response({"error": {"message": "speech is down"}},
                                     status=self.speech_status)
        fmt = body.get("response_format", "mp3")
        response = web.StreamResponse(headers={
            "Content-Type": "audio/mpeg" if fmt == "mp3" else "application/octet-stream"})
        await response.prepare(request)
        payload = b"ID3fake-mp3-bytes" * 50 if fmt == "mp3" else pcm_tone()
        for start in range(0, len(payload), 4096):
            await response.write(payload[start : start + 4096])
        await response.write_eof()
        return response
