"""OpenAI's tool-call shapes, shared by every provider that speaks them (aisuite included)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.llm.base import ChatMessage, ToolCall, ToolSpec

MAX_TOOL_CALLS = 32  # per model turn; more is a runaway model
MAX_ARGUMENT_CHARS = 64_000


def openai_tools(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The request's `tools` array."""
    return [
        {"type": "function", "function": {
            "name": s.name, "description": s.description, "parameters": s.parameters,
        }}
        for s in specs
    ]


def openai_tool_message_fields(message: ChatMessage) -> dict[str, Any]:
    """A `tool` turn or an assistant turn with calls, as an OpenAI chat message dict."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "",
                "content": message.content}
    return {
        "role": "assistant",
        "content": message.content or None,
        "tool_calls": [
            {"id": c.call_id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments or "{}"}}
            for c in message.tool_calls
        ],
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ToolCallOverflow(ValueError):
    """The model asked for too many calls, or sent runaway arguments."""


@dataclass
class _Partial:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


class ToolCallAssembler:
    """Builds whole calls from streamed pieces keyed by `index` (arguments arrive split)."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def add(self, index: int | None, call_id: str | None, name: str | None,
            arguments: str | None) -> None:
        """One streamed piece: id and name come first, then the arguments in parts."""
        key = index if index is not None else len(self._calls)
        partial = self._calls.get(key)
        if partial is None:
            if len(self._calls) >= MAX_TOOL_CALLS:
                raise ToolCallOverflow(f"the model asked for more than {MAX_TOOL_CALLS} tool calls")
            partial = self._calls[key] = _Partial()
        if call_id:
            partial.call_id = call_id
        if name and not partial.name:
            partial.name = name
        if arguments:
            partial.size += len(arguments)
            if partial.size > MAX_ARGUMENT_CHARS:
                raise ToolCallOverflow("the model's tool arguments are too long")
            partial.arguments.append(arguments)

    def add_delta(self, delta_calls: object) -> None:
        """The `delta.tool_calls` of one OpenAI-shaped chunk (parsed JSON or SDK objects)."""
        if not isinstance(delta_calls, Sequence) or isinstance(delta_calls, str):
            return
        for piece in delta_calls:
            if isinstance(piece, dict):
                function = piece.get("function")
                if not isinstance(function, dict):
                    function = {}
                index = piece.get("index")
                self.add(
                    index if isinstance(index, int) else None, _text(piece.get("id")),
                    _text(function.get("name")), _text(function.get("arguments")),
                )
            else:
                function = getattr(piece, "function", None)
                self.add(
                    getattr(piece, "index", None), getattr(piece, "id", None),
                    getattr(function, "name", None), getattr(function, "arguments", None),
                )

    def calls(self) -> tuple[ToolCall, ...]:
        """The assembled calls in index order, each with a unique id."""
        result: list[ToolCall] = []
        seen: set[str] = set()
        for _, partial in sorted(self._calls.items()):
            if not partial.name:
                continue
            call_id = partial.call_id
            if not call_id or call_id in seen:
                call_id = f"call_{secrets.token_hex(8)}"
            seen.add(call_id)
            result.append(ToolCall(call_id, partial.name, "".join(partial.arguments)))
        return tuple(result)


def whole_calls(message_calls: Sequence[Any] | None) -> tuple[ToolCall, ...]:
    """The `message.tool_calls` of a non-streamed answer (SDK objects or dicts)."""
    assembler = ToolCallAssembler()
    for index, call in enumerate(message_calls or ()):
        if isinstance(call, dict):
            function = call.get("function") or {}
            assembler.add(index, call.get("id"), function.get("name"), function.get("arguments"))
        else:
            function = getattr(call, "function", None)
            assembler.add(index, getattr(call, "id", None), getattr(function, "name", None),
                          getattr(function, "arguments", None))
    return assembler.calls()
