"""OpenAI and any OpenAI-compatible server (llama.cpp, Ollama, vLLM), streamed over aiohttp."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

from openai.types.chat import ChatCompletionMessageParam

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
from app.llm.openai_http import OpenAIStreamClient, UpstreamError, UpstreamStatusError
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


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def _usage(raw: dict[str, Any]) -> TokenUsage:
    """A chunk's `usage`, with `prompt_tokens_details.cached_tokens` when reported."""
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return TokenUsage(
        input_tokens=_count(raw.get("prompt_tokens")),
        output_tokens=_count(raw.get("completion_tokens")),
        cached_tokens=_count(cached),
    )


def _first_choice(chunk: dict[str, Any]) -> dict[str, Any] | None:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


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
        self._http = OpenAIStreamClient(
            base_url, api_key, timeout_seconds=timeout_seconds, max_retries=max_retries
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
            if params.tool_choice is not None:
                options["tool_choice"] = params.tool_choice
        if params.response_format is not None:
            options["response_format"] = params.response_format
        if params.json_schema is not None:
            options["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": params.json_schema}}
        if params.openai_extra:
            options.update(params.openai_extra)
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
        body = {
            "model": model,
            "messages": to_openai_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            **self._request_options(params),
        }
        try:
            response = await self._http.open("/chat/completions", body)
        except UpstreamStatusError as exc:
            raise self._status_error(exc) from exc
        except UpstreamError as exc:
            raise self._error(str(exc)) from exc
        try:
            try:
                async with contextlib.aclosing(self._http.events(response)) as chunks:
                    async for chunk in chunks:
                        choice = _first_choice(chunk)
                        if choice is not None:
                            delta = choice.get("delta")
                            if isinstance(delta, dict):
                                text = delta.get("content")
                                if text and isinstance(text, str):
                                    output.append(text)
                                    yield TextDelta(text)
                                calls.add_delta(delta.get("tool_calls"))
                            reason = choice.get("finish_reason")
                            if isinstance(reason, str):
                                finish = reason
                        raw_usage = chunk.get("usage")
                        if isinstance(raw_usage, dict):
                            usage = _usage(raw_usage)
            except (UpstreamError, ToolCallOverflow) as exc:
                raise self._error(str(exc) or type(exc).__name__) from exc
            if finish is None:
                raise self._error("the stream ended before the reply was complete")
            estimated = usage is None
            if usage is None:
                usage = TokenUsage(count_messages(messages), count_tokens("".join(output)))
            tool_calls = calls.calls()
            # Some servers end a tool turn with "stop": the calls themselves are what counts.
            done: FinishReason = "tool_calls" if tool_calls else normalize_finish_reason(finish)
            yield StreamEnd(usage, done, usage_estimated=estimated, tool_calls=tool_calls)
            # After the StreamEnd, so the reply never waits for the body's last bytes.
            await self._http.drain(response)
        finally:
            # Back to the pool when read to the end; closed when the consumer stopped early.
            response.release()

    def _status_error(self, exc: UpstreamStatusError) -> AppError:
        """The context-window error when the request did not fit, else provider_error."""
        return self._context_overflow(exc) or self._error(exc.message)

    def _context_overflow(self, exc: UpstreamStatusError) -> AppError | None:
        """`payload_too_large` naming the context window when the request did not fit."""
        if exc.status != 400:
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

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.close()
