"""The real path: OpenAICompatProvider against llama-server running SmolLM2 on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.config import LLMSettings
from app.errors import PROVIDER_ERROR, AppError
from app.llm.base import ChatMessage, ChatParams, StreamEnd, StreamEvent, TextDelta, ToolSpec
from app.llm.local_server import LocalLlamaServer
from app.llm.openai_compat import OpenAICompatProvider
from app.llm.registry import LOCAL_MODEL, build_registry

PROMPT = [
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "Tell me a story about the sea."),
]
SHORT = ChatParams(temperature=0.0, max_tokens=24)


async def stream(
    provider: OpenAICompatProvider, params: ChatParams = SHORT
) -> list[tuple[float, StreamEvent]]:
    """Every event with the monotonic time it arrived."""
    return [
        (time.monotonic(), event) async for event in provider.stream_chat(PROMPT, "smollm2", params)
    ]


def check_structure(events: list[StreamEvent]) -> StreamEnd:
    """Several non-empty deltas, then exactly one StreamEnd with real usage."""
    *deltas, end = events
    assert len(deltas) >= 3
    assert all(isinstance(d, TextDelta) and d.text for d in deltas)
    assert isinstance(end, StreamEnd)
    assert end.finish_reason in ("stop", "length")
    assert not end.usage_estimated
    assert end.usage.input_tokens > 0 and end.usage.output_tokens > 0
    return end


async def test_stream_yields_deltas_as_they_arrive(local_provider: OpenAICompatProvider) -> None:
    timed = await stream(local_provider)
    end = check_structure([event for _, event in timed])
    assert end.usage.output_tokens <= 24
    arrivals = [at for at, _ in timed]
    assert arrivals == sorted(arrivals)
    # streamed, not delivered at once: the first delta comes well before the end
    assert arrivals[0] < arrivals[-1]
    assert len({round(at, 3) for at in arrivals}) > 2


async def test_token_budget_cuts_with_length(local_provider: OpenAICompatProvider) -> None:
    events = [event for _, event in await stream(local_provider, ChatParams(0.0, 6))]
    end = check_structure(events)
    assert end.finish_reason == "length"
    assert end.usage.output_tokens == 6


async def test_abandoned_stream_leaves_server_usable(local_provider: OpenAICompatProvider) -> None:
    events = local_provider.stream_chat(PROMPT, "smollm2", ChatParams(max_tokens=200))
    received = 0
    async for event in events:
        assert isinstance(event, TextDelta)
        received += 1
        if received == 2:
            break
    await events.aclose()
    check_structure([event for _, event in await stream(local_provider)])


async def test_registry_defaults_to_local_and_streams(llama_server: LocalLlamaServer) -> None:
    registry = build_registry(
        LLMSettings(), llama_server.base_url, local_api_key=llama_server.api_key
    )
    model_id = registry.default_model()
    assert model_id == LOCAL_MODEL
    provider, model = registry.resolve(model_id)
    events = [event async for event in provider.stream_chat(PROMPT, model, SHORT)]
    end = check_structure(events)
    assert registry.cost_usd(model_id, end.usage) == 0.0
    await registry.close()


async def test_server_refuses_requests_without_its_key(llama_server: LocalLlamaServer) -> None:
    provider = OpenAICompatProvider("local", llama_server.base_url, "wrong", max_retries=0)
    with pytest.raises(AppError) as err:
        await stream(provider)
    await provider.close()
    assert err.value.code == PROVIDER_ERROR and err.value.message.startswith("local: ")


async def test_server_starts_and_stops_cleanly(tmp_path: Path) -> None:
    server = LocalLlamaServer(tmp_path, context_window=1024, parallel=1)
    started = time.monotonic()
    await server.start()
    assert server.running and server.base_url.startswith("http://127.0.0.1:")
    assert time.monotonic() - started < 60
    await server.stop()
    assert not server.running
    assert server.log_path.stat().st_size > 0


async def test_embedded_smollm2_ignores_offered_tools(local_provider: OpenAICompatProvider) -> None:
    """SmolLM2's chat template has no tool support: llama.cpp leaves the tools out of the
    prompt and the model answers in text (what the README says the embedded default does)."""
    tool = ToolSpec("calendar_list_events", "List calendar events.", {
        "type": "object", "properties": {"time_min": {"type": "string"}}})
    plain = [e async for e in local_provider.stream_chat(PROMPT, "smollm2", SHORT)]
    offered = [e async for e in local_provider.stream_chat(
        PROMPT, "smollm2", ChatParams(temperature=0.0, max_tokens=24, tools=(tool,)))]
    end_plain, end_tools = plain[-1], offered[-1]
    assert isinstance(end_plain, StreamEnd) and isinstance(end_tools, StreamEnd)
    assert end_tools.tool_calls == () and end_tools.finish_reason in ("stop", "length")
    # Same prompt size: no tool description reached the model.
    assert end_tools.usage.input_tokens == end_plain.usage.input_tokens
