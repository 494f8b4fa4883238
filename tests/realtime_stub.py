"""A fake OpenAI Realtime server on loopback: an aiohttp WebSocket speaking the event subset
Parlour's bridge uses (session.update, input_audio_buffer.*, response.create/cancel).

The speaker's transcript says how much audio was committed ("I sent 500 ms of audio");
each response speaks `words`, one transcript delta and 100 ms of generated PCM per word.
`legacy` uses the beta event names (response.audio.delta, response.audio_transcript.delta).
Faults: `close_on` closes the connection when that client event arrives; `error_on` answers
it with an `error` event.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.servers import free_port
from tests.speech_stub import tone

WORDS = ["Hello ", "from ", "the ", "realtime ", "stub."]


@dataclass
class Connection:
    """What one client connection sent."""

    query: dict[str, str]
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    committed: list[bytes] = field(default_factory=list)
    cancelled: int = 0
    closed: bool = False

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


class RealtimeStub:
    """Start with `await stub.start()`; `base_url` is what llm.openai_base_url gets."""

    def __init__(self, words: list[str] | None = None, *, delay: float = 0.0,
                 legacy: bool = False) -> None:
        self.words = list(words or WORDS)
        self.delay = delay
        self.legacy = legacy
        self.close_on: str | None = None
        self.error_on: str | None = None
        self.connections: list[Connection] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(dict(request.query), dict(request.headers))
        self.connections.append(conn)
        send = _sender(ws)
        await send({"type": "session.created", "session": {"id": self._id("sess")}})
        responding: asyncio.Task[None] | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            conn.events.append(event)
            kind = event["type"]
            if kind == self.close_on:
                await ws.close()
                break
            if kind == self.error_on:
                await send({"type": "error", "error": {
                    "type": "server_error", "code": "stub_error",
                    "message": f"the stub refuses {kind}"}})
                continue
            if kind == "session.update":
                await send({"type": "session.updated", "session": event["session"]})
            elif kind == "input_audio_buffer.append":
                conn.audio += base64.b64decode(event["audio"])
            elif kind == "input_audio_buffer.clear":
                conn.audio = bytearray()
                await send({"type": "input_audio_buffer.cleared"})
            elif kind == "input_audio_buffer.commit":
                await self._commit(conn, send)
            elif kind == "response.create":
                responding = asyncio.create_task(self._respond(send))
                self._tasks.add(responding)
                responding.add_done_callback(self._tasks.discard)
            elif kind == "response.cancel":
                conn.cancelled += 1
                if responding is not None and not responding.done():
                    responding.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await responding
                    await send({"type": "response.done", "response": {
                        "id": "resp", "status": "cancelled", "usage": _usage(1)}})
                else:
                    await send({"type": "error", "error": {
                        "type": "invalid_request_error", "code": "response_cancel_not_active",
                        "message": "no active response"}})
        if responding is not None:
            responding.cancel()
        conn.closed = True
        return ws

    async def _commit(self, conn: Connection, send: Any) -> None:
        audio, conn.audio = bytes(conn.audio), bytearray()
        conn.committed.append(audio)
        item_id = self._id("item")
        await send({"type": "input_audio_buffer.committed", "item_id": item_id})
        await send({"type": "conversation.item.added", "item": {"id": item_id, "role": "user"}})
        ms = len(audio) * 1000 // 48_000
        transcript = f"I sent {ms} ms of audio"
        base = "conversation.item.input_audio_transcription"
        for word in transcript.split(" "):
            await send({"type": f"{base}.delta", "item_id": item_id, "delta": word + " "})
        await send({"type": f"{base}.completed", "item_id": item_id, "transcript": transcript})

    async def _respond(self, send: Any) -> None:
        response_id = self._id("resp")
        audio_kind = "response.audio.delta" if self.legacy else "response.output_audio.delta"
        text_kind = ("response.audio_transcript.delta" if self.legacy
                     else "response.output_audio_transcript.delta")
        await send({"type": "response.created", "response": {"id": response_id}})
        for i, word in enumerate(self.words):
            if self.delay:
                await asyncio.sleep(self.delay)
            await send({"type": text_kind, "response_id": response_id, "delta": word})
            pcm = tone(0.1, 300 + 50 * i)
            await send({"type": audio_kind, "response_id": response_id,
                        "delta": base64.b64encode(pcm).decode()})
        await send({"type": "response.done", "response": {
            "id": response_id, "status": "completed", "usage": _usage(len(self.words))}})


def _usage(words: int) -> dict[str, Any]:
    return {"total_tokens": 100 + 20 * words, "input_tokens": 100, "output_tokens": 20 * words,
            "input_token_details": {"cached_tokens": 10, "audio_tokens": 80, "text_tokens": 20},
            "output_token_details": {"audio_tokens": 15 * words, "text_tokens": 5 * words}}


def _sender(ws: web.WebSocketResponse) -> Any:
    async def send(event: dict[str, Any]) -> None:
        event.setdefault("event_id", "evt")
        if not ws.closed:
            await ws.send_str(json.dumps(event))
    return send


def pcm_of(words: list[str]) -> bytes:
    """The audio the stub speaks for `words`, in order."""
    return b"".join(tone(0.1, 300 + 50 * i) for i in range(len(words)))
