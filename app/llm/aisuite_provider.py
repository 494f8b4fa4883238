"""Anthropic, Groq and AWS Bedrock through aisuite (wrapped here: aisuite is untyped)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from app.errors import PROVIDER_ERROR, AppError
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
    openai_tool_message_fields,
    openai_tools,
    whole_calls,
)

log = logging.getLogger(__name__)

# Any one of these environment variables configures the provider.
KEY_ENV: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "aws": ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"),
}
# The SDK each aisuite provider imports, and the pip package that ships it.
SDK: dict[str, tuple[str, str]] = {
    "anthropic": ("anthropic", "anthropic"),
    "groq": ("groq", "groq"),
    "aws": ("boto3", "boto3"),
}
# aisuite streams Anthropic natively; Groq and Bedrock only answer whole.
STREAMING = frozenset({"anthropic"})


def _original_message(exc: BaseException) -> str:
    """The provider's own message: aisuite's LLMError keeps the original in __context__."""
    llm_error: type[BaseException] = importlib.import_module("aisuite.provider").LLMError
    if isinstance(exc, llm_error):
        original = exc.__cause__ or exc.__context__
        if original is not None:
            exc = original
    return str(exc) or type(exc).__name__


def _request_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Plain dicts with all system text merged first (Anthropic and Bedrock take one).

    Tool turns use OpenAI's shape; aisuite turns them into `tool_use`/`tool_result` blocks.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    rest = [
        openai_tool_message_fields(m) if m.role == "tool" or m.tool_calls
        else {"role": m.role, "content": user_content(m) if m.role == "user" else m.content}
        for m in messages if m.role != "system"
    ]
    return ([{"role": "system", "content": system}] if system else []) + rest


class AisuiteProvider:
    """One aisuite-backed provider: `anthropic`, `groq` or `aws` (Bedrock).

    Groq and Bedrock do not stream through aisuite: their whole answer arrives as
    one TextDelta. When no usage is reported it is estimated with the token counter.
    """

    def __init__(
        self,
        name: str,
        *,
        timeout_seconds: float = 120.0,
        client_config: dict[str, Any] | None = None,
    ) -> None:
        if name not in KEY_ENV:
            raise ValueError(f"aisuite provider {name!r} is not supported")
        self.name = name
        self._config: dict[str, Any] = {}
        if name != "aws":  # Bedrock's aisuite config takes only region_name
            self._config = {"timeout": timeout_seconds, "max_retries": 1}
        self._config.update(client_config or {})
        module, self._package = SDK[name]
        self._sdk_installed = importlib.util.find_spec(module) is not None
        self._client: Any = None
        self._lock = asyncio.Lock()

    @property
    def unavailable_reason(self) -> str | None:
        """Why the provider cannot be used, or None when it can."""
        keys = KEY_ENV[self.name]
        if not any(os.environ.get(key) for key in keys):
            return f"{self.name} is not configured: set {' or '.join(keys)}"
        if not self._sdk_installed:
            return f"{self.name} is not installed: pip install {self._package}"
        return None

    @property
    def available(self) -> bool:
        """True when a key is set in the environment and the SDK is installed."""
        return self.unavailable_reason is None

    def _build_client(self) -> Any:
        # Importing aisuite and building SDK clients reads files: done in a worker thread.
        aisuite = importlib.import_module("aisuite")
        factory = importlib.import_module("aisuite.provider").ProviderFactory
        client = aisuite.Client()
        client.providers[self.name] = factory.create_provider(self.name, dict(self._config))
        return client

    async def _get_client(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client = await asyncio.to_thread(self._build_client)
        return self._client

    def _options(self, params: ChatParams) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if params.temperature is not None:
            options["temperature"] = params.temperature
        if params.max_tokens is not None:
            options["maxTokens" if self.name == "aws" else "max_tokens"] = params.max_tokens
        if params.tools:
            options["tools"] = openai_tools(params.tools)
        return options

    def _usage(self, raw: Any) -> TokenUsage | None:
        if raw is None or raw.prompt_tokens is None or raw.completion_tokens is None:
            return None
        details = getattr(raw, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        prompt = int(raw.prompt_tokens)
        if self.name == "anthropic":
            prompt += cached  # Anthropic counts cache reads apart from input_tokens
        return TokenUsage(prompt, int(raw.completion_tokens), cached)

    async def stream_chat(
        self, messages: Sequence[ChatMessage], model: str, params: ChatParams
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield the reply's text (streamed for Anthropic, whole otherwise), then StreamEnd."""
        request = _request_messages(messages)
        model_id = f"{self.name}:{model}"
        options = self._options(params)
        output: list[str] = []
        usage: TokenUsage | None = None
        finish: str | None = None
        calls = ToolCallAssembler()
        try:
            client = await self._get_client()
            if self.name in STREAMING:
                chunks = await client.chat.completions.acreate(
                    model_id, request, stream=True, **options
                )
                async for chunk in chunks:
                    choice = chunk.choices[0] if chunk.choices else None
                    text = choice.delta.content if choice is not None else None
                    if text:
                        output.append(text)
                        yield TextDelta(text)
                    if choice is not None and choice.delta is not None:
                        # Anthropic's tool_use blocks arrive as OpenAI-shaped pieces.
                        calls.add_delta(getattr(choice.delta, "tool_calls", None))
                    if choice is not None and choice.finish_reason:
                        finish = choice.finish_reason
                    usage = self._usage(chunk.usage) or usage
            else:
                response = await client.chat.completions.acreate(model_id, request, **options)
                text = response.choices[0].message.content or ""
                finish = response.choices[0].finish_reason
                for call in whole_calls(getattr(response.choices[0].message, "tool_calls", None)):
                    calls.add(None, call.call_id, call.name, call.arguments)
                usage = self._usage(response.usage)
                if text:
                    output.append(text)
                    yield TextDelta(text)
        except Exception as exc:
            # aisuite and the SDKs below it raise many types; all are this provider failing.
            message = _original_message(exc)
            log.warning("provider %s failed: %s", self.name, message)
            raise AppError(PROVIDER_ERROR, f"{self.name}: {message}") from exc
        estimated = usage is None
        if usage is None:
            usage = TokenUsage(count_messages(messages), count_tokens("".join(output)))
        tool_calls = calls.calls()
        reason: FinishReason = "tool_calls" if tool_calls else self._finish(finish, usage, params)
        yield StreamEnd(usage, reason, usage_estimated=estimated, tool_calls=tool_calls)

    @staticmethod
    def _finish(finish: str | None, usage: TokenUsage, params: ChatParams) -> FinishReason:
        # aisuite drops Groq's finish reason: a reply that used the whole budget was cut.
        if finish is None and params.max_tokens and usage.output_tokens >= params.max_tokens:
            return "length"
        return normalize_finish_reason(finish)

    async def close(self) -> None:
        """Close the SDK clients aisuite built, if any."""
        client, self._client = self._client, None
        if client is None:
            return
        provider = client.providers.get(self.name)
        async_client = getattr(provider, "async_client", None)
        if async_client is not None:
            await async_client.close()
        sync_close = getattr(getattr(provider, "client", None), "close", None)
        if callable(sync_close):
            await asyncio.to_thread(sync_close)
