"""Every tool this node offers, which a room may enable, and running one call safely."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.config_features import ToolsSettings
from app.errors import invalid
from app.llm.base import ToolCall, ToolSpec, ToolStatus
from app.tools.base import MAX_RESULT_CHARS, Tool, ToolContext, ToolError, ToolSource, truncate

log = logging.getLogger(__name__)

MAX_ROOM_TOOLS = 64


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one call: `done` with the tool's answer, or `error` with why not."""

    status: ToolStatus
    content: str


class ToolRegistry:
    """The tools of every source; the first source to name a tool wins."""

    def __init__(self, settings: ToolsSettings, sources: Sequence[ToolSource]) -> None:
        self.settings = settings
        self._sources = list(sources)

    def all(self) -> list[Tool]:
        """Every tool known here right now (MCP tools appear once their server answers)."""
        seen: dict[str, Tool] = {}
        for source in self._sources:
            for tool in source.tools():
                seen.setdefault(tool.name, tool)
        return sorted(seen.values(), key=lambda t: (t.source != "builtin", t.name))

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, if any."""
        for source in self._sources:
            for tool in source.tools():
                if tool.name == name:
                    return tool
        return None

    def check_enable(self, names: Sequence[str]) -> list[str]:
        """The names a room may enable, deduplicated; `invalid_payload` naming the others."""
        if len(names) > MAX_ROOM_TOOLS:
            raise invalid(f"tools: at most {MAX_ROOM_TOOLS} tools per room")
        unique = list(dict.fromkeys(names))
        unknown = [n for n in unique if self.get(n) is None]
        if unknown:
            raise invalid(f"tools: unknown tool {', '.join(unknown)}")
        unconfigured = [n for n in unique if not self._configured(n)]
        if unconfigured:
            reasons = "; ".join(f"{n} ({self._reason(n)})" for n in unconfigured)
            raise invalid(f"tools: not configured on this server: {reasons}")
        return unique

    def _configured(self, name: str) -> bool:
        tool = self.get(name)
        return tool is not None and tool.configured

    def _reason(self, name: str) -> str:
        tool = self.get(name)
        return (tool.unconfigured or "") if tool is not None else "unknown"

    def for_room(self, enabled: Sequence[str], context: ToolContext) -> RoomTools:
        """The tools a reply in this room may call, bound to who asked."""
        return RoomTools(self, list(enabled), context, self.settings.timeout_seconds)


class RoomTools:
    """One reply's tools: what the model is offered, and each call run with its checks."""

    def __init__(
        self, registry: ToolRegistry, enabled: list[str], context: ToolContext, timeout: float
    ) -> None:
        self._registry = registry
        self._enabled = frozenset(enabled)
        self._context = context
        self._timeout = timeout
        offered = [registry.get(name) for name in enabled]
        self.specs: tuple[ToolSpec, ...] = tuple(
            t.spec() for t in offered if t is not None and t.configured
        )

    async def call(self, call: ToolCall) -> ToolResult:
        """Run one call; every failure is an `error` result for the model, never a raise."""
        try:
            content = await self._run(call)
        except ToolError as exc:
            return ToolResult("error", truncate(f"error: {exc}", MAX_RESULT_CHARS))
        except TimeoutError:
            return ToolResult("error", f"error: {call.name} timed out after {self._timeout:g} s")
        except Exception as exc:
            log.exception("tool %s failed", call.name)
            return ToolResult("error", f"error: {call.name} failed ({type(exc).__name__})")
        return ToolResult("done", truncate(content, MAX_RESULT_CHARS))

    async def _run(self, call: ToolCall) -> str:
        if call.name not in self._enabled:
            raise ToolError(f"the tool {call.name!r} is not enabled in this room")
        tool = self._registry.get(call.name)
        if tool is None:
            raise ToolError(f"the tool {call.name!r} is not available right now")
        if not tool.configured:
            raise ToolError(f"the tool {call.name!r} is not configured: {tool.unconfigured}")
        arguments = parse_arguments(call.arguments)
        errors = sorted(tool.validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "arguments"
            raise ToolError(f"invalid arguments for {call.name}: {where}: {first.message}")
        async with asyncio.timeout(self._timeout):
            return await tool.run(arguments, self._context)


def parse_arguments(text: str) -> dict[str, Any]:
    """The model's JSON arguments as an object ({} for none); ToolError otherwise."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"the arguments are not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise ToolError("the arguments must be a JSON object")
    return value
