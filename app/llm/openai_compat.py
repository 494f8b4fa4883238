"""OpenAI and any OpenAI-compatible server (llama.cpp, Ollama, vLLM) through the openai SDK."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.completion_usage import CompletionUsage

from app.errors import PROVIDER_ERROR, AppError
from app.llm.base import (
    ChatMessage,
    ChatParams,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenUsage,
    normalize_finish_reason,
)
from app.llm.tokens import count_messages, count_tokens

log = logging.getLogger(__name__)


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    """Our messages in the OpenAI request shape."""
    converted: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "system":
            converted.append({"role": "system", "content": message.content})
        elif message.role == "user":
            converted.append({"role": "user", "content": message.content})
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
    ) -> None:
        self.name = name
        self.base_url = base_url
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
        return options

    async def stream_chat(
        self, messages: Sequence[ChatMessage], model: str, params: ChatParams
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield each content delta as it arrives, then one StreamEnd with usage."""
        finish: str | None = None
        usage: TokenUsage | None = None
        output: list[str] = []
        try:
            stream = await self._client.chat.completions.create(
                model=model,
                messages=to_openai_messages(messages),
                stream=True,
                stream_options={"include_usage": True},
                **self._request_options(params),
            )
            async with stream:
                async for chunk in stream:
                    for event in self._chunk_events(chunk):
                        output.append(event.text)
                        yield event
                    if chunk.choices and chunk.choices[0].finish_reason is not None:
                        finish = chunk.choices[0].finish_reason
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
        except openai.OpenAIError as exc:
            message = exc.message if isinstance(exc, openai.APIError) else str(exc)
            raise self._error(message or type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            # openai<3 lets a connection dropped mid-stream surface as a raw httpx error.
            raise self._error(str(exc) or type(exc).__name__) from exc
        if finish is None:
            raise self._error("the stream ended before the reply was complete")
        estimated = usage is None
        if usage is None:
            usage = TokenUsage(count_messages(messages), count_tokens("".join(output)))
        yield StreamEnd(usage, normalize_finish_reason(finish), usage_estimated=estimated)

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
