"""The model <-> tool loop of one reply: stream, run the calls it asks for, feed results back.

`run_tool_loop` yields LoopEvents: text deltas as they stream, a ToolCallUpdate `running`
when a call starts and `done`/`error` with its (shortened) result when it ends, then ONE
StreamEnd whose usage is summed over every round. Each call runs as its own task; closing
or cancelling the loop cancels the calls still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from app.llm.base import (
    ChatMessage,
    ChatParams,
    FinishReason,
    LoopEvent,
    Provider,
    StreamEnd,
    TextDelta,
    TokenUsage,
    ToolCall,
    ToolCallUpdate,
)
from app.tools.base import MAX_EVENT_RESULT_CHARS, truncate
from app.tools.registry import RoomTools, ToolResult

log = logging.getLogger(__name__)
T = TypeVar("T")

CANCEL_GRACE_SECONDS = 1.0  # a cancelled call gets this long to unwind
ROUNDS_EXHAUSTED = (
    "\n\n_(Stopped here: the assistant reached its limit of {n} tool rounds for one reply.)_"
)


def with_clock(messages: Sequence[ChatMessage], now: datetime) -> list[ChatMessage]:
    """The messages with today's date in the system prompt (tools take dates and times)."""
    note = f"Current date and time: {now.strftime('%A %Y-%m-%d %H:%M')} UTC."
    result = list(messages)
    if result and result[0].role == "system":
        result[0] = replace(result[0], content=f"{result[0].content}\n\n{note}")
    else:
        result.insert(0, ChatMessage(role="system", content=note))
    return result


async def run_tool_loop(
    provider: Provider,
    model: str,
    messages: Sequence[ChatMessage],
    params: ChatParams,
    tools: RoomTools,
    max_rounds: int,
) -> AsyncIterator[LoopEvent]:
    """Run up to `max_rounds` rounds of tool calls; without tools, one plain stream."""
    history = with_clock(messages, datetime.now(UTC)) if tools.specs else list(messages)
    request = replace(params, tools=tools.specs)
    total = TokenUsage(0, 0, 0)
    estimated = False
    wrote_text = False
    rounds = 0
    while True:
        end: StreamEnd | None = None
        round_text: list[str] = []
        async with _closing(provider.stream_chat(history, model, request)) as stream:
            async for event in stream:
                if isinstance(event, StreamEnd):
                    end = event
                    continue
                if not round_text and wrote_text and event.text:
                    yield TextDelta("\n\n")  # this round's text apart from the last one's
                round_text.append(event.text)
                wrote_text = wrote_text or bool(event.text)
                yield event
        if end is None:  # a provider that broke its contract; count it as a plain stop
            end = StreamEnd(TokenUsage(0, 0), "stop", usage_estimated=True)
        total = _add(total, end.usage)
        estimated = estimated or end.usage_estimated
        if not end.tool_calls:
            finish: FinishReason = end.finish_reason
            if finish == "tool_calls":  # a tool turn without calls: nothing left to do
                finish = "stop"
            yield StreamEnd(total, finish, usage_estimated=estimated)
            return
        if rounds >= max_rounds:
            yield TextDelta(ROUNDS_EXHAUSTED.format(n=max_rounds))
            yield StreamEnd(total, "stop", usage_estimated=estimated)
            return
        rounds += 1
        history.append(ChatMessage(
            role="assistant", content="".join(round_text), tool_calls=end.tool_calls
        ))
        results: dict[int, ToolResult] = {}
        async with aclosing(_run_calls(tools, end.tool_calls)) as updates:
            async for index, update, result in updates:
                if result is not None:
                    results[index] = result
                yield update
        for index, call in enumerate(end.tool_calls):
            history.append(ChatMessage(
                role="tool", content=results[index].content, tool_call_id=call.call_id
            ))


async def _run_calls(
    tools: RoomTools, calls: Sequence[ToolCall]
) -> AsyncGenerator[tuple[int, ToolCallUpdate, ToolResult | None], None]:
    """`running` for every call, then each call's end as it finishes (each its own task)."""
    for index, call in enumerate(calls):
        yield index, ToolCallUpdate(call.call_id, call.name, call.arguments, "running"), None
    tasks = {
        asyncio.create_task(tools.call(call), name=f"tool-{call.name}"): index
        for index, call in enumerate(calls)
    }
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index = tasks[task]
                call = calls[index]
                # Only this loop cancels its calls; a call cancelled from inside is a failure.
                result = (ToolResult("error", f"error: {call.name} was cancelled")
                          if task.cancelled() else task.result())
                shown = truncate(result.content, MAX_EVENT_RESULT_CHARS)
                yield index, ToolCallUpdate(
                    call.call_id, call.name, call.arguments, result.status, shown
                ), result
    finally:
        running = [task for task in tasks if not task.done()]
        for task in running:
            task.cancel()
        if running:
            _, stuck = await asyncio.wait(running, timeout=CANCEL_GRACE_SECONDS)
            for task in stuck:
                log.warning("tool call %s did not stop within %.0f s", task.get_name(),
                            CANCEL_GRACE_SECONDS)


@asynccontextmanager
async def _closing(events: AsyncIterator[T]) -> AsyncGenerator[AsyncIterator[T], None]:
    """Close a provider's stream when the loop leaves it (its own `finally` runs now)."""
    try:
        yield events
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def _add(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cached_tokens + b.cached_tokens,
    )
