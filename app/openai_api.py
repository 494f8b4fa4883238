"""OpenAI's chat shapes: requests to our messages, our events to completions and chunks.

Shared by the `/v1` gateway and `POST /api/v1/aisuite/chat`; no transport here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.errors import (
    CONFLICT,
    FORBIDDEN,
    INTERNAL,
    INVALID_PAYLOAD,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    PROVIDER_ERROR,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNAVAILABLE,
    AppError,
    invalid,
)
from app.llm.base import (
    ChatMessage,
    ChatParams,
    StreamEnd,
    StreamEvent,
    TokenUsage,
    ToolCall,
    ToolSpec,
)
from app.llm.tool_calls import MAX_TOOL_CALLS

MAX_TOKENS = 32_768


class _Lenient(BaseModel):
    # SDKs and frameworks send fields we do not use (user, seed, logprobs...): ignored.
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Lenient):
    name: str = Field(min_length=1, max_length=64)
    arguments: str = Field("", max_length=64_000)


class ToolCallIn(_Lenient):
    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatTurn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = Field(None, max_length=MAX_TOOL_CALLS)
    tool_call_id: str | None = Field(None, max_length=128)


class FunctionDef(_Lenient):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = Field("", max_length=4_000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class ToolDef(_Lenient):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Lenient):
    name: str = Field(min_length=1, max_length=64)


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    function: NamedFunction


class ResponseFormat(_Lenient):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


EXTRA_FIELDS = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


class ChatCompletionRequest(_Lenient):
    """`POST /v1/chat/completions`: the fields Parlour acts on (others are ignored)."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatTurn] = Field(min_length=1, max_length=500)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    n: int | None = Field(None, ge=1, le=1, description="only 1 is supported")
    # Passed to OpenAI-compatible providers as they are (others have no equivalent).
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)


class EmbeddingRequest(_Lenient):
    """`POST /v1/embeddings`."""

    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(description="a text or up to 2048 texts")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)


def _text(turn: ChatTurn, where: str) -> str:
    if turn.content is None:
        return ""
    if isinstance(turn.content, str):
        return turn.content
    parts: list[str] = []
    for index, part in enumerate(turn.content):
        if part.type != "text" or part.text is None:
            raise invalid(f"{where}.content.{index}: only text parts are supported here")
        parts.append(part.text)
    return "".join(parts)


def to_chat(req: ChatCompletionRequest) -> tuple[list[ChatMessage], ChatParams]:
    """Our messages and params for an OpenAI request; `invalid_payload` naming the field."""
    messages: list[ChatMessage] = []
    for index, turn in enumerate(req.messages):
        where = f"messages.{index}"
        text = _text(turn, where)
        if turn.role == "tool":
            if not turn.tool_call_id:
                raise invalid(f"{where}.tool_call_id: required in a tool message")
            messages.append(ChatMessage(role="tool", content=text,
                                        tool_call_id=turn.tool_call_id))
        elif turn.role == "assistant":
            calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments)
                          for c in turn.tool_calls or ())
            messages.append(ChatMessage(role="assistant", content=text, tool_calls=calls))
        elif turn.role in ("system", "developer"):
            messages.append(ChatMessage(role="system", content=text))
        else:
            messages.append(ChatMessage(role="user", content=text))
    tools = tuple(
        ToolSpec(t.function.name, t.function.description, t.function.parameters)
        for t in req.tools or ()
    )
    choice: str | dict[str, Any] | None = (
        req.tool_choice.model_dump() if isinstance(req.tool_choice, NamedToolChoice)
        else req.tool_choice
    )
    params = ChatParams(
        temperature=req.temperature,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        tools=tools,
        tool_choice=choice,
        response_format=(req.response_format.model_dump(exclude_none=True)
                         if req.response_format is not None else None),
        openai_extra={f: getattr(req, f) for f in EXTRA_FIELDS
                      if getattr(req, f) is not None} or None,
    )
    return messages, params


# -- answers --------------------------------------------------------------------------


def usage_dict(usage: TokenUsage) -> dict[str, Any]:
    """OpenAI's `usage` object."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def _calls(calls: Sequence[ToolCall], *, indexed: bool) -> list[dict[str, Any]]:
    return [
        {**({"index": i} if indexed else {}), "id": c.call_id, "type": "function",
         "function": {"name": c.name, "arguments": c.arguments or "{}"}}
        for i, c in enumerate(calls)
    ]


def completion_body(
    head: dict[str, Any], text: str, end: StreamEnd | None
) -> dict[str, Any]:
    """A whole `chat.completion` (`head`: id, created, model)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if end is not None and end.tool_calls:
        message["content"] = text or None
        message["tool_calls"] = _calls(end.tool_calls, indexed=False)
    return {
        **head, "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": end.finish_reason if end else "stop",
                     "message": message}],
        "usage": usage_dict(end.usage if end else TokenUsage(0, 0)),
    }


async def completion_chunks(
    head: dict[str, Any], events: AsyncIterator[StreamEvent], *,
    include_usage: bool, usage_on_last: bool = False,
) -> AsyncGenerator[dict[str, Any], None]:
    """`chat.completion.chunk`s for a stream of our events.

    OpenAI's order: the role, content deltas, the tool calls, the finish reason, then (with
    `stream_options.include_usage`) one chunk with empty `choices` and the usage.
    `usage_on_last`: the `/aisuite/chat` shape, usage on the finish chunk instead.
    """
    chunk = {**head, "object": "chat.completion.chunk"}

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    if not usage_on_last:
        yield choice({"role": "assistant", "content": ""})
    async for event in events:
        if not isinstance(event, StreamEnd):
            yield choice({"content": event.text})
            continue
        if event.tool_calls:
            yield choice({"tool_calls": _calls(event.tool_calls, indexed=True)})
        last = choice({}, event.finish_reason)
        if usage_on_last:
            last["usage"] = usage_dict(event.usage)
        yield last
        if include_usage and not usage_on_last:
            yield {**chunk, "choices": [], "usage": usage_dict(event.usage)}


# -- errors ---------------------------------------------------------------------------


class ModelNotFound(AppError):
    """A model id no configured provider serves (OpenAI's 404 `model_not_found`)."""

    def __init__(self, message: str) -> None:
        super().__init__(NOT_FOUND, message)


# Our code → (HTTP status, OpenAI error type, OpenAI error code).
_OPENAI: dict[str, tuple[int, str, str]] = {
    INVALID_PAYLOAD: (400, "invalid_request_error", "invalid_payload"),
    UNAUTHORIZED: (401, "invalid_request_error", "invalid_api_key"),
    FORBIDDEN: (403, "permission_error", "forbidden"),
    NOT_FOUND: (404, "invalid_request_error", "not_found"),
    CONFLICT: (409, "invalid_request_error", "conflict"),
    PAYLOAD_TOO_LARGE: (413, "invalid_request_error", "payload_too_large"),
    RATE_LIMITED: (429, "requests", "rate_limit_exceeded"),
    PROVIDER_ERROR: (502, "api_error", "provider_error"),
    UNAVAILABLE: (503, "server_error", "unavailable"),
    INTERNAL: (500, "server_error", "internal"),
}
_FIELD = re.compile(r"^([A-Za-z_][\w.]*): ")


def openai_error(err: AppError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and `{"error": {message, type, code, param}}` body of an error."""
    status, kind, code = _OPENAI.get(err.code, (err.status, "server_error", err.code))
    param: str | None = None
    if isinstance(err, ModelNotFound):
        code, param = "model_not_found", "model"
    elif err.code == INVALID_PAYLOAD and err.status in (405, 415):
        status = err.status
    elif err.code == PAYLOAD_TOO_LARGE and "context window" in err.message:
        code = "context_length_exceeded"
    match = _FIELD.match(err.message)
    if match is not None and param is None and err.code == INVALID_PAYLOAD:
        param = match.group(1)
    return status, {"error": {"message": err.message, "type": kind, "code": code,
                              "param": param}}
