"""The reply engine's source for voice turns: each spoken turn's reply has its own answer.

Voice turns are answered by the reply engine like any message (admission, the room's
line, stop, persistence, late joiners); only where the reply's events come from
differs. The turn registers an `Answer` under its user message id before the reply
starts; every other reply goes to the inner source unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from app.assistant.source import ReplyRequest, ReplySource
from app.llm.base import LoopEvent


class Answer(Protocol):
    """Produces the events of one spoken answer (and sends its audio on the side)."""

    def events(self, request: ReplyRequest, inner: ReplySource) -> AsyncIterator[LoopEvent]:
        """The reply's events; `inner` is the engine's usual source (the room's model)."""
        ...


class VoiceReplySource:
    """A `ReplySource`: spoken turns go to their `Answer`, everything else to `inner`."""

    def __init__(
        self, inner: ReplySource, typed: Callable[[ReplyRequest], Answer | None] | None = None
    ) -> None:
        self._inner = inner
        # How typed messages' replies are answered in voice rooms (spoken too), if at all.
        self._typed = typed
        self._answers: dict[str, Answer] = {}

    def register(self, message_id: str, answer: Answer) -> None:
        """Answer the user message `message_id` with `answer` (until `forget`)."""
        self._answers[message_id] = answer

    def forget(self, message_id: str) -> None:
        self._answers.pop(message_id, None)

    def __call__(self, request: ReplyRequest) -> AsyncIterator[LoopEvent]:
        answer = self._answers.get(request.reply_to.message_id)
        if answer is None and self._typed is not None:
            answer = self._typed(request)
        if answer is None:
            return self._inner(request)
        return answer.events(request, self._inner)
