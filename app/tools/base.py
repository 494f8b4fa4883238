"""What a tool is: a name, a description, a JSON Schema, and an async function."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from app.llm.base import ToolSpec
from app.models import Room

# What the model reads of one result, and what the room sees of it (SPEC: 2,000 chars).
MAX_RESULT_CHARS = 12_000
MAX_EVENT_RESULT_CHARS = 2_000
BUILTIN = "builtin"


class ToolError(Exception):
    """A tool could not do what was asked; the message goes to the model as the result."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who asks, and where: tools that read data apply the same isolation as retrieval."""

    room: Room
    asker_id: str


ToolFunction = Callable[[dict[str, Any], ToolContext], Awaitable[str]]


@dataclass(frozen=True)
class Tool:
    """One callable tool. `unconfigured` says why it cannot run here (None: it can)."""

    name: str
    description: str
    parameters: dict[str, Any]
    source: str
    run: ToolFunction
    unconfigured: str | None = None
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Anthropic's converter reads `properties`; an argument-less tool still needs one.
        if self.parameters.get("type") == "object" and "properties" not in self.parameters:
            object.__setattr__(self, "parameters", {**self.parameters, "properties": {}})
        object.__setattr__(self, "validator", Draft202012Validator(self.parameters))

    @property
    def configured(self) -> bool:
        """Whether the tool can run on this node."""
        return self.unconfigured is None

    def spec(self) -> ToolSpec:
        """What the model is offered."""
        return ToolSpec(self.name, self.description, self.parameters)

    def as_dict(self) -> dict[str, Any]:
        """The `GET /api/v1/tools` entry."""
        return {
            "name": self.name, "description": self.description,
            "parameters": self.parameters, "source": self.source,
            "configured": self.configured,
        }


def check_schema(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a usable JSON Schema for tool arguments, or None."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    if schema.get("type") != "object":
        return "the parameters schema must describe an object"
    return None


class ToolSource(Protocol):
    """Something that provides tools (a built-in group, an MCP server)."""

    def tools(self) -> Sequence[Tool]:
        """The tools it offers right now."""
        ...


def to_json(value: Any) -> str:
    """A result as compact JSON text (what most tools give the model)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def truncate(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, saying so when it was cut."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 0)
    return text[:keep] + f"… [{len(text) - keep} more characters cut]"
