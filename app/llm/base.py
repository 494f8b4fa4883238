"""The one provider interface: chat messages in, text deltas and one final usage out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls"]
ToolStatus: TypeAlias = Literal["running", "done", "error"]


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image given to a vision model with a user turn (already resized)."""

    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, its JSON Schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for; `arguments` is the JSON text exactly as it produced it."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of the conversation sent to a model.

    `images`: pictures attached to a user turn. `tool_calls`: the calls an assistant turn
    made. A `tool` turn answers the call `tool_call_id` with `content` as the result.
    """

    role: Role
    content: str
    images: tuple[ImagePart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatParams:
    """Sampling options; None leaves the provider's default. `tools`: offered to the model.

    `json_schema`: ask for JSON of this schema (structured output where the provider has
    it: OpenAI and llama.cpp; the caller still validates what comes back).
    """

    temperature: float | None = None
    max_tokens: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens billed for one reply; cached_tokens is the part of input_tokens read from cache."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    # Audio tokens (OpenAI Realtime), counted in input_tokens / output_tokens too.
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of new text, exactly as the provider sent it (never accumulated)."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of every stream; `tool_calls` when the model asks for tools."""

    usage: TokenUsage
    finish_reason: FinishReason
    usage_estimated: bool = False
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCallUpdate:
    """A tool call's progress inside a reply (the tool loop yields these to the engine).

    Not produced by providers: `assistant_tool_call` is sent to the room for each one.
    """

    call_id: str
    name: str
    arguments: str
    status: ToolStatus
    result: str | None = None


StreamEvent: TypeAlias = TextDelta | StreamEnd
LoopEvent: TypeAlias = TextDelta | ToolCallUpdate | StreamEnd


class Provider(Protocol):
    """A chat backend. `stream_chat` yields TextDelta events then exactly one StreamEnd.

    Failures raise `AppError(PROVIDER_ERROR, "<provider>: <message>")`, possibly after
    some deltas were yielded; the caller keeps the partial text.
    """

    name: str

    @property
    def available(self) -> bool:
        """Whether the provider is configured (key present, server running)."""
        ...

    def stream_chat(
        self, messages: Sequence[ChatMessage], model: str, params: ChatParams
    ) -> AsyncIterator[StreamEvent]:
        """Stream a reply from `model` (the part of the id after "provider:")."""
        ...

    async def close(self) -> None:
        """Release connections and clients."""
        ...


def normalize_finish_reason(reason: str | None) -> FinishReason:
    """Map a provider's finish reason onto ours: only a length cut-off is not `stop`."""
    if reason in ("length", "max_tokens"):
        return "length"
    return "stop"


def split_model_id(model_id: str) -> tuple[str, str]:
    """Split "provider:model" at the first colon; ValueError when either part is empty."""
    provider, sep, model = model_id.partition(":")
    if not sep or not provider or not model or provider != provider.strip():
        raise ValueError(f"unknown model {model_id!r}: expected 'provider:model'")
    return provider, model
