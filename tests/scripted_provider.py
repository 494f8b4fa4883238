"""A deterministic LLM provider for tests: fixed deltas, delays and failures, by model name.

Models: `<name>:fixed` yields `deltas`; `<name>:echo` repeats the last user turn word by
word; `<name>:fail` yields `fail_after` deltas then raises provider_error;
`<name>:tools` asks for the next calls of `tool_script` (one entry per request), and once
the script is used up answers with the tool results it was given. Every call's prompt is
recorded in `prompts` (and its params in `params`) so tests can assert what the model got.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from app.errors import PROVIDER_ERROR, AppError
from app.llm.base import (
    ChatMessage,
    ChatParams,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenUsage,
    ToolCall,
)

DEFAULT_DELTAS = [f"word{i} " for i in range(12)]


class ScriptedProvider:
    """Implements app.llm.base.Provider without a network."""

    def __init__(
        self,
        name: str = "scripted",
        deltas: Sequence[str] = DEFAULT_DELTAS,
        delay: float = 0.0,
        fail_after: int = 3,
        cached_tokens: int = 0,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.deltas = list(deltas)
        self.delay = delay
        self.fail_after = fail_after
        self.cached_tokens = cached_tokens
        self.prompts: list[list[ChatMessage]] = []
        self.params: list[ChatParams] = []
        self.tool_script: list[tuple[ToolCall, ...]] = []
        self.started = asyncio.Event()
        # When given, every stream waits for it before its first delta (tests hold replies).
        self.gate = gate

    @property
    def available(self) -> bool:
        return True

    def _script(self, messages: Sequence[ChatMessage], model: str) -> list[str]:
        if model == "echo":
            last = next((m.content for m in reversed(messages) if m.role == "user"), "")
            return [w + " " for w in last.split()]
        return list(self.deltas)

    async def stream_chat(
        self, messages: Sequence[ChatMessage], model: str, params: ChatParams
    ) -> AsyncIterator[StreamEvent]:
        self.prompts.append(list(messages))
        self.params.append(params)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if model == "tools":
            async for event in self._tool_turn(messages):
                yield event
            return
        script = self._script(messages, model)
        if params.max_tokens is not None:
            script = script[: params.max_tokens]
        for i, delta in enumerate(script):
            if model == "fail" and i == self.fail_after:
                raise AppError(PROVIDER_ERROR, f"{self.name}: upstream returned 502")
            if self.delay:
                await asyncio.sleep(self.delay)
            yield TextDelta(delta)
        prompt_tokens = sum(len(m.content) for m in messages) // 4 + 1
        yield StreamEnd(TokenUsage(prompt_tokens, len(script), self.cached_tokens), "stop")

    async def _tool_turn(self, messages: Sequence[ChatMessage]) -> AsyncIterator[StreamEvent]:
        usage = TokenUsage(sum(len(m.content) for m in messages) // 4 + 1, 3)
        if self.tool_script:
            calls = self.tool_script.pop(0)
            yield TextDelta("Let me check. ")
            yield StreamEnd(usage, "tool_calls", tool_calls=calls)
            return
        results = [m.content for m in messages if m.role == "tool"]
        for word in ["Here", "is", "what", "I", "found:"]:
            if self.delay:
                await asyncio.sleep(self.delay)
            yield TextDelta(word + " ")
        yield TextDelta(" | ".join(results) or "nothing")
        yield StreamEnd(usage, "stop")

    async def close(self) -> None:
        return None
