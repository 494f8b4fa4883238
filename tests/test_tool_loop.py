"""The model <-> tool loop against the scripted provider, with in-process tools."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from app.config_features import ToolsSettings
from app.llm.base import (
    ChatMessage,
    ChatParams,
    LoopEvent,
    StreamEnd,
    TextDelta,
    ToolCall,
    ToolCallUpdate,
)
from app.models import Member, Room
from app.tools.base import BUILTIN, Tool, ToolContext, ToolError
from app.tools.loop import run_tool_loop
from app.tools.registry import RoomTools, ToolRegistry
from tests.scripted_provider import ScriptedProvider

NOW = datetime.now(UTC)
ROOM = Room(room_id="r1", title="t", owner_id="u1", room_type="aisuite", model=None,
            assistant_mode="always", system_prompt="", visibility="private",
            members=[Member(user_id="u1", name="Ann", role="owner")], last_seq=0,
            created_at=NOW, updated_at=NOW)


class Box:
    """Test tools: lookup (answers), slow (sleeps until cancelled), broken (raises),
    refuses (ToolError), big (a long result)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()

    def tools(self) -> Sequence[Tool]:
        obj = {"type": "object", "additionalProperties": False}
        return [
            Tool("lookup", "Look a key up.", {**obj, "properties": {
                "key": {"type": "string"}, "n": {"type": "integer", "minimum": 1}},
                "required": ["key"]}, BUILTIN, self._lookup),
            Tool("slow", "Takes long.", obj, BUILTIN, self._slow),
            Tool("broken", "Raises.", obj, BUILTIN, self._broken),
            Tool("refuses", "Refuses.", obj, BUILTIN, self._refuses),
            Tool("big", "Long result.", obj, BUILTIN, self._big),
            Tool("offline", "Not configured.", obj, BUILTIN, self._lookup,
                 unconfigured="set tools.offline"),
        ]

    async def _lookup(self, args: dict[str, Any], ctx: ToolContext) -> str:
        self.calls.append(("lookup", args))
        return json.dumps({"key": args["key"], "value": f"value-of-{args['key']}",
                           "asker": ctx.asker_id})

    async def _slow(self, args: dict[str, Any], ctx: ToolContext) -> str:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "late"

    async def _broken(self, args: dict[str, Any], ctx: ToolContext) -> str:
        raise RuntimeError("bug")

    async def _refuses(self, args: dict[str, Any], ctx: ToolContext) -> str:
        raise ToolError("the API answered 403: forbidden")

    async def _big(self, args: dict[str, Any], ctx: ToolContext) -> str:
        return "x" * 50_000


def call(name: str, args: Any, call_id: str | None = None) -> ToolCall:
    text = args if isinstance(args, str) else json.dumps(args)
    return ToolCall(call_id or f"call_{name}", name, text)


def room_tools(box: Box, enabled: list[str], timeout: float = 5.0) -> RoomTools:
    registry = ToolRegistry(ToolsSettings(timeout_seconds=timeout), [box])
    return registry.for_room(enabled, ToolContext(ROOM, "u1"))


async def run(provider: ScriptedProvider, tools: RoomTools, max_rounds: int = 5
              ) -> list[LoopEvent]:
    prompt = [ChatMessage("system", "Be brief."), ChatMessage("user", "what is k1?")]
    return [e async for e in run_tool_loop(provider, "tools", prompt, ChatParams(), tools,
                                           max_rounds)]


def updates(events: list[LoopEvent]) -> list[tuple[str, str]]:
    return [(e.name, e.status) for e in events if isinstance(e, ToolCallUpdate)]


def text(events: list[LoopEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_a_call_runs_and_its_result_goes_back_to_the_model() -> None:
    box, provider = Box(), ScriptedProvider()
    provider.tool_script = [(call("lookup", {"key": "k1"}),)]
    events = await run(provider, room_tools(box, ["lookup", "slow"]))

    assert updates(events) == [("lookup", "running"), ("lookup", "done")]
    done = next(e for e in events if isinstance(e, ToolCallUpdate) and e.status == "done")
    assert json.loads(done.result or "") == {"key": "k1", "value": "value-of-k1", "asker": "u1"}
    assert box.calls == [("lookup", {"key": "k1"})]
    # The model was offered the enabled tools only, with the date to resolve "tomorrow".
    assert [t.name for t in provider.params[0].tools] == ["lookup", "slow"]
    assert "Current date and time:" in provider.prompts[0][0].content
    # Second request: the assistant turn with its call, then the tool turn answering it.
    second = provider.prompts[1]
    assert second[-2].role == "assistant" and second[-2].tool_calls == (
        call("lookup", {"key": "k1"}),)
    assert second[-1].role == "tool" and second[-1].tool_call_id == "call_lookup"
    assert "value-of-k1" in text(events)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "stop"
    assert sum(isinstance(e, StreamEnd) for e in events) == 1
    # Usage is summed over both rounds (3 output tokens each in the script).
    assert end.usage.output_tokens == 6


async def test_several_calls_in_one_turn_each_get_their_result() -> None:
    box, provider = Box(), ScriptedProvider()
    provider.tool_script = [(call("lookup", {"key": "a"}, "c1"), call("lookup", {"key": "b"}, "c2"))]
    events = await run(provider, room_tools(box, ["lookup"]))
    assert sorted(updates(events)) == sorted([("lookup", "running")] * 2 + [("lookup", "done")] * 2)
    tool_turns = [m for m in provider.prompts[1] if m.role == "tool"]
    assert [m.tool_call_id for m in tool_turns] == ["c1", "c2"]
    assert "value-of-a" in tool_turns[0].content and "value-of-b" in tool_turns[1].content


@pytest.mark.parametrize(("bad_call", "expected"), [
    (call("slow", {}), "not enabled in this room"),
    (call("nonexistent", {}), "not enabled in this room"),
    (call("lookup", {"key": 5}), "invalid arguments for lookup: key: 5 is not of type 'string'"),
    (call("lookup", {"n": 2}), "'key' is a required property"),
    (call("lookup", {"key": "k", "extra": 1}), "Additional properties are not allowed"),
    (call("lookup", "{not json"), "not valid JSON"),
    (call("lookup", "[1, 2]"), "must be a JSON object"),
    (call("broken", {}), "broken failed (RuntimeError)"),
    (call("refuses", {}), "the API answered 403: forbidden"),
    (call("offline", {}), "not configured: set tools.offline"),
])
async def test_bad_calls_become_error_results_and_the_reply_goes_on(
    bad_call: ToolCall, expected: str
) -> None:
    box, provider = Box(), ScriptedProvider()
    provider.tool_script = [(bad_call,)]
    enabled = ["lookup", "broken", "refuses", "offline"]
    events = await run(provider, room_tools(box, enabled))

    assert updates(events) == [(bad_call.name, "running"), (bad_call.name, "error")]
    error = [e for e in events if isinstance(e, ToolCallUpdate)][-1]
    assert error.result is not None and expected in error.result, error.result
    assert box.calls == []  # never called
    tool_turn = provider.prompts[1][-1]
    assert tool_turn.role == "tool" and expected in tool_turn.content
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "stop"
    assert expected in text(events)  # the model answered with the error it was given


async def test_a_call_over_the_timeout_is_an_error_result() -> None:
    box, provider = Box(), ScriptedProvider()
    provider.tool_script = [(call("slow", {}),)]
    started = time.monotonic()
    events = await run(provider, room_tools(box, ["slow"], timeout=0.2))
    assert time.monotonic() - started < 2
    assert updates(events) == [("slow", "running"), ("slow", "error")]
    error = [e for e in events if isinstance(e, ToolCallUpdate)][-1]
    assert "timed out after 0.2 s" in (error.result or "")
    assert box.cancelled.is_set()
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "stop"


async def test_more_rounds_than_allowed_ends_the_reply_and_says_so() -> None:
    box, provider = Box(), ScriptedProvider()
    provider.tool_script = [(call("lookup", {"key": f"k{i}"}, f"c{i}"),) for i in range(5)]
    events = await run(provider, room_tools(box, ["lookup"]), max_rounds=2)

    assert len(box.calls) == 2  # the third round's call never ran
    assert len(provider.prompts) == 3
    assert text(events).endswith("limit of 2 tool rounds for one reply.)_")
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "stop"
    assert end.usage.output_tokens == 9


async def test_results_are_shortened_for_the_room_but_bounded_for_the_model() -> None:
    box, provider = Box(), ScriptedProvider()
    provider.tool_script = [(call("big", {}),)]
    events = await run(provider, room_tools(box, ["big"]))
    done = next(e for e in events if isinstance(e, ToolCallUpdate) and e.status == "done")
    assert done.result is not None and len(done.result) <= 2000
    tool_turn = provider.prompts[1][-1]
    assert 2000 < len(tool_turn.content) <= 12_000 and tool_turn.content.endswith("characters cut]")


async def test_cancelling_the_loop_cancels_the_running_call_within_a_second() -> None:
    box, provider = Box(), ScriptedProvider()
    provider.tool_script = [(call("slow", {}),)]
    seen: list[LoopEvent] = []

    async def consume() -> None:
        async for event in run_tool_loop(provider, "tools", [ChatMessage("user", "go")],
                                         ChatParams(), room_tools(box, ["slow"]), 5):
            seen.append(event)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(box.started.wait(), 5)
    stopped = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - stopped < 1.0
    assert box.cancelled.is_set()
    assert updates(seen) == [("slow", "running")]


async def test_without_tools_the_loop_is_one_plain_stream() -> None:
    provider = ScriptedProvider()
    events = [e async for e in run_tool_loop(provider, "fixed", [ChatMessage("user", "hi")],
                                             ChatParams(), room_tools(Box(), []), 5)]
    assert provider.params[0].tools == ()
    assert provider.prompts[0] == [ChatMessage("user", "hi")]
    assert text(events) == "".join(f"word{i} " for i in range(12))
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "stop"
