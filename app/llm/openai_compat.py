"""OpenAI and any OpenAI-compatible server (llama.cpp, Ollama, vLLM) through the openai SDK."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import httpx
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.completion_usage import CompletionUsage

from app.errors import PAYLOAD_TOO_LARGE, PROVIDER_ERROR, AppError
from app.llm.base import (
    ChatMessage,
    ChatParams,
    FinishReason,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenUsage,
    normalize_finish_reason,
)
from app.llm.parts import user_content
from app.llm.tokens import count_messages, count_tokens
from app.llm.tool_calls import (
    ToolCallAssembler,
    ToolCallOverflow,
    openai_tool_message_fields,
    openai_tools,
)

log = logging.getLogger(__name__)

# How llama.cpp ("exceeds the available context size", type exceed_context_size_error),
# OpenAI (code context_length_exceeded) and vLLM ("maximum context length") say it.
CONTEXT_OVERFLOW_MARKERS = (
    "exceed_context_size", "exceeds the available context size", "context_length_exceeded",
    "maximum context length",
)


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    """Our messages in the OpenAI request shape."""
    converted: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "tool" or message.tool_calls:
            converted.append(cast(ChatCompletionMessageParam, openai_tool_message_fields(message)))
        elif message.role == "system":
            converted.append({"role": "system", "content": message.content})
        elif message.role == "user":
            converted.append(cast(ChatCompletionMessageParam,
                                  {"role": "user", "content": user_content(message)}))
        else:
            converted.append({"role": "assistant", "content": message.content})
    return converted


def _usage(raw: CompletionUsage) -> TokenUsage:
    details = raw.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    return TokenUsage(
        input_tokens=raw.prompt_tokens,
        output_tokens=raw.completion_tokens,
        cached_tokens=cached or 0,
    )


class OpenAICompatProvider:
    """Streams chat completions from an OpenAI-compatible endpoint.

    When the server reports no usage, input and output tokens are estimated with
    the o200k token counter and the StreamEnd says `usage_estimated=True`.
    """

    def __init__(
        self,
        name: str,
        base_url: str | None,
        api_key: str,
        *,
        timeout_seconds: float = 120.0,
        max_retries: int = 1,
        max_tokens_field: str = "max_tokens",
        context_setting: str | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        # The setting that sizes this server's context window, named when a request
        # overflows it (llm.local_context_window for the embedded llama-server).
        self._context_setting = context_setting
        # OpenAI's newer models take `max_completion_tokens`; other servers `max_tokens`.
        self._max_tokens_field = max_tokens_field
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_seconds,
            max_retries=max_retries,
        )

    @property
    def available(self) -> bool:
        """Always true: the registry builds this provider only when it is configured."""
        return True

    def _error(self, message: str) -> AppError:
        log.warning("provider %s failed: %s", self.name, message)
        return AppError(PROVIDER_ERROR, f"{self.name}: {message}")

    def _request_options(self, params: ChatParams) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if params.temperature is not None:
            options["temperature"] = params.temperature
        if params.max_tokens is not None:
            options[self._max_tokens_field] = params.max_tokens
        if params.tools:
            options["tools"] = openai_tools(params.tools)
        if params.json_schema is not None:
            options["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": params.json_schema}}
        return options

    async def stream_chat(
        self, messages: Sequence[ChatMessage], model: str, params: ChatParams
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield each content delta as it arrives, then one StreamEnd with usage.

        Tool calls stream as pieces keyed by index (arguments split across chunks);
        the StreamEnd carries them whole.
        """
        finish: str | None = None
        usage: TokenUsage | None = None
        output: list[str] = []
        calls = ToolCallAssembler()
        try:
            # What chat.completions.create(stream=True) sends, minus its recursive
            # transform of the body: our messages are plain JSON already, and that
            # transform is the most CPU between send_message and the request.
            stream = await self._client.post(
                "/chat/completions",
                body={
                    "model": model,
                    "messages": to_openai_messages(messages),
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    **self._request_options(params),
                },
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            async with stream:
                async for chunk in stream:
                    for event in self._chunk_events(chunk):
                        output.append(event.text)
                        yield event
                    if chunk.choices and chunk.choices[0].delta is not None:
                        calls.add_delta(chunk.choices[0].delta.tool_calls)
                    if chunk.choices and chunk.choices[0].finish_reason is not None:
                        finish = chunk.choices[0].finish_reason
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
        except openai.OpenAIError as exc:
            overflow = self._context_overflow(exc)
            if overflow is not None:
                raise overflow from exc
            message = exc.message if isinstance(exc, openai.APIError) else str(exc)
            raise self._error(message or type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            # openai<3 lets a connection dropped mid-stream surface as a raw httpx error.
            raise self._error(str(exc) or type(exc).__name__) from exc
        except ToolCallOverflow as exc:
            raise self._error(str(exc)) from exc
        if finish is None:
            raise self._error("the stream ended before the reply was complete")
        estimated = usage is None
        if usage is None:
            usage = TokenUsage(count_messages(messages), count_tokens("".join(output)))
        tool_calls = calls.calls()
        # Some servers end a tool turn with "stop": the calls themselves are what counts.
        reason: FinishReason = "tool_calls" if tool_calls else normalize_finish_reason(finish)
        yield StreamEnd(usage, reason, usage_estimated=estimated, tool_calls=tool_calls)

    def _context_overflow(self, exc: openai.OpenAIError) -> AppError | None:
        """`payload_too_large` naming the context window when the request did not fit."""
        if not isinstance(exc, openai.BadRequestError):
            return None
        body = exc.body if isinstance(exc.body, dict) else {}
        text = f"{exc.message} {body.get('type', '')} {body.get('code', '')}".lower()
        if not any(marker in text for marker in CONTEXT_OVERFLOW_MARKERS):
            return None
        window = body.get("n_ctx")
        asked = body.get("n_prompt_tokens")
        size = f" of {window} tokens" if isinstance(window, int) else ""
        got = f" (the request needs {asked})" if isinstance(asked, int) else ""
        fix = (
            f"raise {self._context_setting} or shorten the conversation"
            if self._context_setting else
            "shorten the conversation or choose a model with a larger context window"
        )
        log.warning("provider %s: request over the context window%s%s", self.name, size, got)
        return AppError(
            PAYLOAD_TOO_LARGE,
            f"{self.name}: the request does not fit the model's context window{size}{got}; "
            f"{fix}",
        )

    @staticmethod
    def _chunk_events(chunk: ChatCompletionChunk) -> list[TextDelta]:
        return [
            TextDelta(choice.delta.content)
            for choice in chunk.choices[:1]
            if choice.delta is not None and choice.delta.content
        ]

    async def close(self) -> None:
        """Close the SDK's HTTP connection pool."""
        await self._client.close()
