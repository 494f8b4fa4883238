"""The OpenAI Realtime bridge: one Realtime session per voice room with voice activity.

Push-to-talk: the session has no turn detection; the speaker's chunks are appended to
the input buffer as they come, `voice_stop` commits it, the input transcription (the
`voice_transcript` deltas, then the user's message) comes back first, and only then is
`response.create` sent, so history reads in order. The response's audio goes to the
room as `assistant_audio`, its transcript as the reply's text. Stop sends
`response.cancel`. A session unused for `voice.idle_seconds` is closed; a session whose
connection closed or failed is forgotten, and the next turn opens a new one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import orjson
from openai import AsyncOpenAI

from app.assistant.source import ReplyRequest, ReplySource
from app.config import LLMSettings
from app.config_features import VoiceSettings
from app.errors import PROVIDER_ERROR, UNAVAILABLE, AppError
from app.events import Emitter
from app.llm.base import LoopEvent, StreamEnd, TextDelta, TokenUsage
from app.models import Message, Room
from app.tasks import cancel_and_wait
from app.voice.source import Answer
from app.voice.speech_port import BYTES_PER_SECOND, SAMPLE_RATE
from app.voice.turn import AudioSink, Turn

log = logging.getLogger(__name__)

NO_KEY = ("the OpenAI Realtime bridge needs OPENAI_API_KEY "
          "(or set voice.backend to \"embedded\")")
CONNECT_TIMEOUT = 15.0
SEND_TIMEOUT = 10.0
MAX_EVENTS = 4096  # of one response, waiting for the reply to read them
AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
TEXT_DELTAS = ("response.output_audio_transcript.delta", "response.audio_transcript.delta",
               "response.output_text.delta", "response.text.delta")
TRANSCRIPTION = "conversation.item.input_audio_transcription."
HISTORY_CHARS = 6000  # of the room's recent messages put in a new session's instructions
# The room's latest messages, oldest first (MessageStore.page with a limit).
HistoryReader = Callable[[str], Awaitable[list[Message]]]
Item = tuple[str, Any]  # ("text", str) | ("audio", bytes) | ("done", dict) | ("error", AppError)


def _lost(detail: str) -> AppError:
    return AppError(PROVIDER_ERROR, f"the OpenAI Realtime session failed: {detail}")


class ResponseStream:
    """The events of one response, in order, for the reply that reads them."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[Item] = asyncio.Queue(MAX_EVENTS)
        self.finished = False

    def put(self, item: Item) -> None:
        if self.finished:
            return
        if item[0] in ("done", "error"):
            self.finished = True
        try:
            self.items.put_nowait(item)
        except asyncio.QueueFull:  # the reply stopped reading: end it
            self.finished = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.items.get_nowait()
            self.items.put_nowait(("error", _lost("the reply fell behind the stream")))


class RealtimeSession:
    """One WebSocket to the Realtime API for one room; its reader task routes events."""

    def __init__(self, room_id: str, connection: Any, emitter: Emitter) -> None:
        self.room_id = room_id
        self._conn = connection
        self._emitter = emitter
        self.last_used = time.monotonic()
        self.closed = False
        self._transcript: asyncio.Future[str] | None = None
        self._speaker: str | None = None
        self._response: ResponseStream | None = None
        # Sends go out in the order they were asked for (chunks, then the commit): FIFO.
        self._sending = asyncio.Lock()
        self._reader = asyncio.create_task(self._read(), name=f"realtime-{room_id}")

    # -- sending --------------------------------------------------------------------------

    async def _send(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        if self.closed:
            raise _lost("the connection is closed")
        self.last_used = time.monotonic()
        try:
            async with self._sending, asyncio.timeout(SEND_TIMEOUT):
                await call()
        except Exception as exc:
            await self.close()
            raise _lost(f"{what}: {exc}") from exc

    async def configure(self, instructions: str, voice: str, transcription_model: str) -> None:
        """`session.update`: instructions, voice, PCM16 24 kHz both ways, push-to-talk."""
        fmt = {"type": "audio/pcm", "rate": SAMPLE_RATE}
        session = {
            "type": "realtime",
            "instructions": instructions,
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": fmt, "turn_detection": None,
                          "transcription": {"model": transcription_model}},
                "output": {"format": fmt, "voice": voice},
            },
        }
        await self._send(
            "session.update", lambda: self._conn.session.update(session=cast(Any, session))
        )

    async def append(self, audio: bytes) -> None:
        encoded = base64.b64encode(audio).decode()
        await self._send("append", lambda: self._conn.input_audio_buffer.append(audio=encoded))

    async def clear(self) -> None:
        await self._send("clear", self._conn.input_audio_buffer.clear)

    async def commit_and_transcribe(self, user_id: str, within: float) -> str:
        """Commit the input buffer; the speaker's words once transcribed."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._transcript, self._speaker = waiter, user_id
        try:
            await self._send("commit", self._conn.input_audio_buffer.commit)
            async with asyncio.timeout(within):
                return (await waiter).strip()
        except TimeoutError as exc:
            raise _lost(f"no transcript after {within:g} s") from exc
        finally:
            self._transcript = self._speaker = None

    async def respond(self) -> ResponseStream:
        """`response.create`; the events of the response."""
        stream = ResponseStream()
        self._response = stream
        await self._send("response.create", self._conn.response.create)
        return stream

    async def cancel_response(self, stream: ResponseStream) -> None:
        """`response.cancel` if `stream` is still running; it is detached either way."""
        if self._response is stream:
            self._response = None
        if not stream.finished and not self.closed:
            with contextlib.suppress(AppError):
                await self._send("response.cancel", self._conn.response.cancel)
        stream.finished = True

    # -- receiving ------------------------------------------------------------------------

    async def _read(self) -> None:
        error = _lost("the server closed the connection")
        try:
            while True:
                raw = await self._conn.recv_bytes()
                await self._route(orjson.loads(raw))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.closed:
                log.warning("realtime session of room %s ended: %r", self.room_id, exc)
            error = _lost(f"the server closed the connection ({type(exc).__name__})")
        finally:
            self.closed = True
            self._fail(error)

    async def _route(self, event: dict[str, Any]) -> None:
        self.last_used = time.monotonic()
        kind = str(event.get("type", ""))
        response = self._response
        if kind in AUDIO_DELTAS and response is not None:
            response.put(("audio", base64.b64decode(event.get("delta") or "")))
        elif kind in TEXT_DELTAS and response is not None:
            response.put(("text", str(event.get("delta") or "")))
        elif kind == "response.done" and response is not None:
            response.put(("done", event.get("response") or {}))
            self._response = None
        elif kind.startswith(TRANSCRIPTION):
            await self._transcription(kind[len(TRANSCRIPTION):], event)
        elif kind == "error":
            self._error(event.get("error") or {})

    async def _transcription(self, what: str, event: dict[str, Any]) -> None:
        waiter, speaker = self._transcript, self._speaker
        if waiter is None or waiter.done() or speaker is None:
            return
        if what == "delta" and event.get("delta"):
            # Awaited here, so the deltas reach the room in order and before the final text.
            try:
                await self._emitter.voice_transcript(
                    self.room_id, speaker, str(event["delta"]), False)
            except Exception:
                log.warning("sending a transcript delta failed", exc_info=True)
        elif what == "completed":
            waiter.set_result(str(event.get("transcript") or ""))
        elif what == "failed":
            detail = (event.get("error") or {}).get("message") or "transcription failed"
            waiter.set_exception(_lost(str(detail)))

    def _error(self, error: dict[str, Any]) -> None:
        if error.get("code") == "response_cancel_not_active":
            return  # a stop that came as the response ended
        failure = _lost(str(error.get("message") or error.get("code") or "error"))
        log.warning("realtime error in room %s: %s", self.room_id, error)
        self._fail(failure)

    def _fail(self, error: AppError) -> None:
        if self._response is not None:
            self._response.put(("error", error))
            self._response = None
        if self._transcript is not None and not self._transcript.done():
            self._transcript.set_exception(error)

    async def close(self) -> None:
        """Close the connection and end the reader (waiters fail with provider_error)."""
        if self.closed and self._reader.done():
            return
        self.closed = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SEND_TIMEOUT):
                await self._conn.close()
        if self._reader is not asyncio.current_task():
            await cancel_and_wait(self._reader)
        self._fail(_lost("the session was closed"))


class RealtimeAnswer:
    """An `Answer`: the Realtime response's transcript as text, its audio to the room."""

    def __init__(self, session: RealtimeSession, send_audio: AudioSink) -> None:
        self._session = session
        self._send_audio = send_audio

    async def events(
        self, request: ReplyRequest, inner: ReplySource
    ) -> AsyncIterator[LoopEvent]:
        stream = await self._session.respond()
        try:
            while True:
                kind, value = await stream.items.get()
                if kind == "text" and value:
                    yield TextDelta(value)
                elif kind == "audio" and value:
                    for start in range(0, len(value), BYTES_PER_SECOND):
                        await self._send_audio(request.message_id,
                                               value[start:start + BYTES_PER_SECOND])
                elif kind == "done":
                    yield _end(value)
                    return
                elif kind == "error":
                    raise value
        finally:
            await self._session.cancel_response(stream)


def _end(response: dict[str, Any]) -> StreamEnd:
    """The reply's end from `response.done`: usage and finish reason."""
    status = response.get("status")
    if status == "failed":
        details = (response.get("status_details") or {}).get("error") or {}
        raise _lost(str(details.get("message") or "the response failed"))
    usage = response.get("usage") or {}
    details_in = usage.get("input_token_details") or {}
    details_out = usage.get("output_token_details") or {}
    tokens = TokenUsage(
        int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0),
        int(details_in.get("cached_tokens") or 0), int(details_in.get("audio_tokens") or 0),
        int(details_out.get("audio_tokens") or 0),
    )
    return StreamEnd(tokens, "length" if status == "incomplete" else "stop")


class RealtimeBackend:
    """A `VoiceBackend` on the OpenAI Realtime API (sessions kept per room on this node)."""

    name = "openai_realtime"
    needs_context = False  # the session keeps the conversation

    def __init__(
        self,
        settings: VoiceSettings,
        llm: LLMSettings,
        api_key: str | None,
        emitter: Emitter,
        assistant_name: str,
        history: HistoryReader,
    ) -> None:
        self._settings = settings
        self._history = history
        self._model = llm.openai_realtime_model
        self._emitter = emitter
        self._assistant_name = assistant_name
        self._client = (AsyncOpenAI(api_key=api_key, base_url=llm.openai_base_url)
                        if api_key else None)
        self._sessions: dict[str, RealtimeSession] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def check(self) -> None:
        if self._client is None:
            raise AppError(UNAVAILABLE, NO_KEY)

    def model_for(self, room: Room) -> str | None:
        return f"openai:{self._model}"

    async def begin(self, turn: Turn, room: Room) -> None:
        session = await self._session_for(room)
        await session.clear()

    async def append(self, turn: Turn, audio: bytes) -> None:
        await self._live(turn.room_id).append(audio)

    async def transcribe(self, turn: Turn) -> str:
        session = self._live(turn.room_id)
        return await session.commit_and_transcribe(
            turn.principal.user_id, self._settings.transcript_timeout_seconds)

    def answer(self, turn: Turn, send_audio: AudioSink) -> Answer:
        return RealtimeAnswer(self._live(turn.room_id), send_audio)

    async def drop(self, turn: Turn) -> None:
        session = self._sessions.get(turn.room_id)
        if session is not None and not session.closed:
            with contextlib.suppress(AppError):
                await session.clear()

    async def release_room(self, room_id: str) -> None:
        """Another node took the room's floor: its session moves there."""
        session = self._sessions.pop(room_id, None)
        if session is not None:
            await session.close()

    async def close(self) -> None:
        await cancel_and_wait(self._sweeper)
        for session in list(self._sessions.values()):
            await session.close()
        self._sessions.clear()
        if self._client is not None:
            await self._client.close()

    # -- sessions -------------------------------------------------------------------------

    def _live(self, room_id: str) -> RealtimeSession:
        session = self._sessions.get(room_id)
        if session is None or session.closed:
            self._sessions.pop(room_id, None)
            raise _lost("the connection is closed; take the floor again")
        return session

    async def _session_for(self, room: Room) -> RealtimeSession:
        lock = self._opening.setdefault(room.room_id, asyncio.Lock())
        async with lock:
            session = self._sessions.get(room.room_id)
            if session is not None and not session.closed:
                return session
            if session is not None:
                await session.close()
            session = await self._open(room)
            self._sessions[room.room_id] = session
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="realtime-idle")
        return session

    async def _open(self, room: Room) -> RealtimeSession:
        if self._client is None:
            raise AppError(UNAVAILABLE, NO_KEY)
        manager = self._client.realtime.connect(model=self._model)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                connection = await manager.enter()
        except Exception as exc:
            raise AppError(PROVIDER_ERROR,
                           f"cannot reach the OpenAI Realtime API: {exc}") from exc
        session = RealtimeSession(room.room_id, connection, self._emitter)
        try:
            instructions = self._instructions(room, await self._history(room.room_id))
            await session.configure(instructions, self._settings.voice,
                                    self._settings.transcription_model)
        except BaseException:
            await session.close()
            raise
        return session

    def _instructions(self, room: Room, history: list[Message]) -> str:
        """The room's system prompt, and its recent conversation (a new session starts
        empty: after an idle close, or when the room's session moved to another node)."""
        parts = [f"You are {self._assistant_name}, the assistant in a shared voice room "
                 f"called {room.title!r}. Several people may talk to you in turn; answer "
                 "the latest speaker briefly and naturally."]
        if room.system_prompt:
            parts.append(room.system_prompt)
        lines: list[str] = []
        used = 0
        for message in reversed(history):
            text = message.content.strip()
            if not text:
                continue
            who = message.author.name if message.author else self._assistant_name
            line = f"{who}: {text}"
            if used + len(line) > HISTORY_CHARS:
                break
            lines.append(line)
            used += len(line)
        if lines:
            parts.append("The conversation so far in this room:\n" + "\n".join(reversed(lines)))
        return "\n\n".join(parts)

    async def _sweep(self) -> None:
        """Close sessions unused for voice.idle_seconds."""
        idle = self._settings.idle_seconds
        while self._sessions:
            await asyncio.sleep(min(idle / 4, 5.0))
            now = time.monotonic()
            for room_id, session in list(self._sessions.items()):
                if session.closed or now - session.last_used > idle:
                    if self._sessions.get(room_id) is session:
                        del self._sessions[room_id]
                    await session.close()
