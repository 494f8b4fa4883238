"""The reply engine's source of events when a room has tools: the model <-> tool loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from app.llm.base import ChatMessage, ChatParams, LoopEvent, Provider
from app.models import Room
from app.tools.base import ToolContext
from app.tools.loop import run_tool_loop
from app.tools.registry import ToolRegistry


class ToolRequest(Protocol):
    """What the loop reads of the engine's reply request (app.assistant.source.ReplyRequest)."""

    @property
    def room(self) -> Room: ...
    @property
    def requested_by(self) -> str: ...
    @property
    def provider(self) -> Provider: ...
    @property
    def model(self) -> str: ...
    @property
    def messages(self) -> list[ChatMessage]: ...
    @property
    def params(self) -> ChatParams: ...


class ToolLoopSource:
    """Offers the room's enabled tools to the model and runs the calls it asks for."""

    def __init__(self, registry: ToolRegistry) -> None:
        self._registry = registry

    def __call__(self, request: ToolRequest) -> AsyncIterator[LoopEvent]:
        """The reply's events: one plain stream when the room enabled no tools."""
        if not request.room.tools:
            return request.provider.stream_chat(request.messages, request.model, request.params)
        tools = self._registry.for_room(
            request.room.tools, ToolContext(request.room, request.requested_by)
        )
        return run_tool_loop(request.provider, request.model, request.messages, request.params,
                             tools, self._registry.settings.max_rounds)
