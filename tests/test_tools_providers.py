"""Providers with tools: OpenAI-compatible streaming (arguments split across chunks) and
Anthropic `tool_use` through aisuite, each against a loopback stub of its API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.config_features import ToolsSettings
from app.llm.aisuite_provider import AisuiteProvider
from app.llm.base import (
    ChatMessage,
    ChatParams,
    StreamEnd,
    TextDelta,
    ToolCall,
    ToolCallUpdate,
    ToolSpec,
)
from app.llm.openai_compat import OpenAICompatProvider
from app.tools.base import ToolContext
from app.tools.loop import run_tool_loop
from app.tools.registry import ToolRegistry
from tests.llm_tool_stubs import AnthropicToolStub, Call, OpenAIToolStub, Turn, split_args
from tests.test_tool_loop import ROOM, Box
from tests.tool_stubs import serve


@pytest.fixture
async def stub() -> AsyncIterator[tuple[OpenAIToolStub, OpenAICompatProvider]]:
    fake = OpenAIToolStub()
    async with serve(fake.app()) as url:
        provider = OpenAICompatProvider("stub", f"{url}/v1", "test-key", max_retries=0)
        yield fake, provider
        await provider.close()


SPEC = ToolSpec("lookup", "Look a key up.", {"type": "object", "properties": {
    "key": {"type": "string"}}, "required": ["key"]})


async def test_streamed_tool_call_pieces_are_assembled(
    stub: tuple[OpenAIToolStub, OpenAICompatProvider],
) -> None:
    fake, provider = stub
    fake.turns.append(Turn(text=("Checking",), calls=(
        Call("call_a", "lookup", split_args({"key": "alpha", "note": "x" * 30})),
        Call("call_b", "lookup", split_args({"key": "beta"}, size=3)),
    )))
    events = [e async for e in provider.stream_chat(
        [ChatMessage("user", "hi")], "gpt-test", ChatParams(tools=(SPEC,)))]

    assert events[0] == TextDelta("Checking")
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "tool_calls"
    assert end.tool_calls == (
        ToolCall("call_a", "lookup", json.dumps({"key": "alpha", "note": "x" * 30})),
        ToolCall("call_b", "lookup", json.dumps({"key": "beta"})),
    )
    assert end.usage.input_tokens == 50 and not end.usage_estimated
    sent = fake.requests[0]
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "lookup", "description": "Look a key up.", "parameters": SPEC.parameters}}]


async def test_the_loop_sends_tool_turns_back_in_openai_shape(
    stub: tuple[OpenAIToolStub, OpenAICompatProvider],
) -> None:
    fake, provider = stub
    fake.turns += [
        Turn(calls=(Call("call_1", "lookup", split_args({"key": "k1"})),)),
        Turn(text=("k1 is ", "value-of-k1.")),
    ]
    tools = ToolRegistry(ToolsSettings(), [Box()]).for_room(["lookup"], ToolContext(ROOM, "u1"))
    events = [e async for e in run_tool_loop(
        provider, "gpt-test", [ChatMessage("system", "S"), ChatMessage("user", "k1?")],
        ChatParams(max_tokens=100), tools, 5)]

    assert [(e.name, e.status) for e in events if isinstance(e, ToolCallUpdate)] == [
        ("lookup", "running"), ("lookup", "done")]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "k1 is value-of-k1."
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.usage.input_tokens == 100
    second: list[dict[str, Any]] = fake.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "lookup", "arguments": json.dumps({"key": "k1"})}}]}
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_1"
    assert json.loads(second[-1]["content"])["value"] == "value-of-k1"


async def test_without_tools_no_tools_field_is_sent(
    stub: tuple[OpenAIToolStub, OpenAICompatProvider],
) -> None:
    fake, provider = stub
    fake.turns.append(Turn(text=("plain",)))
    events = [e async for e in provider.stream_chat([ChatMessage("user", "hi")], "m",
                                                    ChatParams())]
    assert "tools" not in fake.requests[0]
    assert isinstance(events[-1], StreamEnd) and events[-1].tool_calls == ()


async def test_anthropic_tool_use_through_aisuite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    fake = AnthropicToolStub(turns=[
        Turn(text=("Let me look.",), calls=(
            Call("toolu_1", "lookup", split_args({"key": "k1"}, size=4)),)),
        Turn(text=("k1 is ", "value-of-k1.")),
    ])
    async with serve(fake.app()) as url:
        provider = AisuiteProvider("anthropic", client_config={"base_url": url,
                                                               "max_retries": 0})
        tools = ToolRegistry(ToolsSettings(), [Box()]).for_room(
            ["lookup"], ToolContext(ROOM, "u1"))
        try:
            events = [e async for e in run_tool_loop(
                provider, "claude-test", [ChatMessage("system", "S"), ChatMessage("user", "k1?")],
                ChatParams(max_tokens=200), tools, 5)]
        finally:
            await provider.close()

    assert [(e.name, e.status) for e in events if isinstance(e, ToolCallUpdate)] == [
        ("lookup", "running"), ("lookup", "done")]
    assert next(e.arguments for e in events if isinstance(e, ToolCallUpdate)) == '{"key": "k1"}'
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Let me look.\n\nk1 is value-of-k1."
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "stop"
    assert end.usage.input_tokens == 80 and end.usage.output_tokens == 24
    first, second = fake.requests
    lookup = Box().tools()[0].parameters
    assert first["tools"] == [{"name": "lookup", "description": "Look a key up.", "input_schema": {
        "type": "object", "properties": lookup["properties"], "required": ["key"]}}]
    assert first["system"].startswith("S")
    assistant, result = second["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert {"type": "tool_use", "id": "toolu_1", "name": "lookup",
            "input": {"key": "k1"}} in assistant["content"]
    assert result["role"] == "user" and result["content"][0]["type"] == "tool_result"
    assert result["content"][0]["tool_use_id"] == "toolu_1"
    assert "value-of-k1" in result["content"][0]["content"]


async def test_openai_tool_choice_reaches_anthropic_in_its_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    fake = AnthropicToolStub(turns=[Turn(text=("ok",))] * 3)
    choices: list[str | dict[str, Any]] = [
        "required", "auto", {"type": "function", "function": {"name": "lookup"}}]
    async with serve(fake.app()) as url:
        provider = AisuiteProvider("anthropic", client_config={"base_url": url,
                                                               "max_retries": 0})
        try:
            for choice in choices:
                params = ChatParams(max_tokens=20, tools=(SPEC,), tool_choice=choice,
                                    response_format={"type": "json_object"})
                [e async for e in provider.stream_chat([ChatMessage("user", "k1?")],
                                                       "claude-test", params)]
        finally:
            await provider.close()
    assert [r["tool_choice"] for r in fake.requests] == [
        {"type": "any"}, {"type": "auto"}, {"type": "tool", "name": "lookup"}]
    assert all("response_format" not in r for r in fake.requests)  # Anthropic has none
