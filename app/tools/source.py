"""The reply engine's source of events when a room has tools: the model <-> tool loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.assistant.source import ReplyRequest, provider_source
from app.llm.base import LoopEvent
from app.tools.base import ToolContext
from app.tools.loop import run_tool_loop
from app.tools.registry import ToolRegistry


class ToolLoopSource:
    """A `ReplySource`: offers the room's enabled tools and runs the calls the model asks for."""

    def __init__(self, registry: ToolRegistry) -> None:
        self._registry = registry

    def __call__(self, request: ReplyRequest) -> AsyncIterator[LoopEvent]:
        """The reply's events: one plain provider stream when the room enabled no tools."""
        if not request.room.tools:
            return provider_source(request)
        tools = self._registry.for_room(
            request.room.tools, ToolContext(request.room, request.requested_by)
        )
        return run_tool_loop(request.provider, request.model, request.messages, request.params,
                             tools, self._registry.settings.max_rounds)
