"""The embedded pipeline's answer: the room's model as usual, spoken sentence by sentence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from app.assistant.source import ReplyRequest, ReplySource
from app.events import Emitter
from app.llm.base import LoopEvent, TextDelta
from app.voice.sentences import SentenceSplitter
from app.voice.speech_port import BYTES_PER_SECOND, SpeechPort

log = logging.getLogger(__name__)

AudioSink = Callable[[str, bytes], Awaitable[None]]  # (message_id, pcm16)
MAX_SENTENCES = 32  # waiting to be spoken; beyond this the text waits for the voice
CHUNK_BYTES = BYTES_PER_SECOND // 4  # assistant_audio pieces of 250 ms


class SpokenAnswer:
    """An `Answer`: passes the model's events through and speaks its text as it comes."""

    def __init__(self, speech: SpeechPort, send_audio: AudioSink) -> None:
        self._speech = speech
        self._send_audio = send_audio

    async def events(
        self, request: ReplyRequest, inner: ReplySource
    ) -> AsyncIterator[LoopEvent]:
        if not self._speech.can_speak:  # no voice here: the answer is text only
            events = inner(request)
            try:
                async for event in events:
                    yield event
            finally:
                close = getattr(events, "aclose", None)
                if close is not None:
                    await close()
            return
        sentences: asyncio.Queue[str | None] = asyncio.Queue(MAX_SENTENCES)
        # A child of this generator: cancelled in its `finally` (stop, failure, the end).
        speaking = asyncio.create_task(
            self._speak(request.message_id, sentences), name=f"voice-tts-{request.room.room_id}"
        )
        splitter = SentenceSplitter()
        events = inner(request)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    for sentence in splitter.push(event.text):
                        await _put(sentences, sentence, speaking)
                yield event
            rest = splitter.flush()
            if rest:
                await _put(sentences, rest, speaking)
            await _put(sentences, None, speaking)
            await speaking  # the reply ends when its last sentence was spoken
        finally:
            speaking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await speaking
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def _speak(self, message_id: str, sentences: asyncio.Queue[str | None]) -> None:
        try:
            await self._speak_all(message_id, sentences)
        except Exception:
            # The voice failed: the answer goes on in text (it is saved either way).
            log.warning("speaking the answer %s failed", message_id, exc_info=True)

    async def _speak_all(self, message_id: str, sentences: asyncio.Queue[str | None]) -> None:
        pending = b""
        while (sentence := await sentences.get()) is not None:
            async for pcm in self._speech.synthesize(sentence):
                pending += pcm
                while len(pending) >= CHUNK_BYTES:
                    piece, pending = pending[:CHUNK_BYTES], pending[CHUNK_BYTES:]
                    await self._send_audio(message_id, piece)
        if pending:
            await self._send_audio(message_id, pending[: len(pending) // 2 * 2])


async def _put(
    queue: asyncio.Queue[str | None], item: str | None, speaker: asyncio.Task[None]
) -> None:
    """Queue a sentence for the voice, waiting while it is behind (not once it gave up)."""
    if speaker.done():
        return
    put = asyncio.ensure_future(queue.put(item))
    try:
        await asyncio.wait({put, speaker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not put.done():
            put.cancel()


class TypedReplyVoice:
    """Speaks the replies to typed messages in voice rooms (when a voice is available)."""

    def __init__(self, speech: SpeechPort, emitter: Emitter, voice_room_type: str) -> None:
        self._speech = speech
        self._emitter = emitter
        self._room_type = voice_room_type

    def __call__(self, request: ReplyRequest) -> SpokenAnswer | None:
        """A `SpokenAnswer` for a reply in a voice room; None elsewhere (text only)."""
        if request.room.room_type != self._room_type or not self._speech.can_speak:
            return None
        seq = 0
        room_id = request.room.room_id

        async def send(message_id: str, pcm: bytes) -> None:
            nonlocal seq
            seq += 1
            await self._emitter.assistant_audio(room_id, message_id, seq, pcm)

        return SpokenAnswer(self._speech, send)
