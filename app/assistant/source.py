"""Where a reply's events come from: the one replaceable seam between the engine and models.

The engine builds a `ReplyRequest` (room, prompt, provider, params) and consumes the
`LoopEvent`s its `ReplySource` yields: `TextDelta`s, `ToolCallUpdate`s and `StreamEnd`s.
The plain source streams one provider call; the tool loop (app/tools) is a source that
runs model↔tool rounds and yields the same events. Every `StreamEnd` is one model call:
the reply adds up their usage, and the last one's finish reason is the reply's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from app.llm.base import ChatMessage, ChatParams, LoopEvent, Provider
from app.models import Message, Room


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """Everything a source needs to produce one reply."""

    room: Room
    reply_to: Message  # the user message being answered
    requested_by: str  # user id whose limits and credentials apply
    model_id: str  # "provider:model"
    provider: Provider
    model: str  # the provider's own model name
    messages: list[ChatMessage]  # the prompt: system, sources, recent turns
    params: ChatParams
    message_id: str = ""  # the reply's own message, set once it is stored


class ReplySource(Protocol):
    """Produces a reply's events. Cancelling the consumer cancels whatever it awaits."""

    def __call__(self, request: ReplyRequest) -> AsyncIterator[LoopEvent]: ...


def provider_source(request: ReplyRequest) -> AsyncIterator[LoopEvent]:
    """One call to the provider, no tools."""
    return request.provider.stream_chat(request.messages, request.model, request.params)
