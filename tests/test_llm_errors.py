"""Provider failures become AppError codes: real stub servers on loopback, no mocks."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from app.config import LLMSettings
from app.errors import INVALID_PAYLOAD, PROVIDER_ERROR, UNAVAILABLE, AppError
from app.llm.aisuite_provider import AisuiteProvider
from app.llm.base import ChatMessage, ChatParams, Provider, StreamEnd, StreamEvent, TextDelta
from app.llm.openai_compat import OpenAICompatProvider
from app.llm.registry import build_registry

HELLO = [ChatMessage("user", "hello")]
DELTAS = ["Hel", "lo ", "there"]


def sse(data: object) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def chunk(content: str | None, finish: str | None = None) -> dict[str, object]:
    delta = {"content": content} if content is not None else {}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def fail(request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "boom upstream", "type": "server"}}, status=500)


async def stream(request: web.Request) -> web.StreamResponse:
    """SSE deltas; /drop cuts the connection, /truncated ends early, /nousage omits usage."""
    mode = request.match_info["mode"]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for text in DELTAS:
        await response.write(sse(chunk(text)))
        await asyncio.sleep(0.01)
    if mode == "drop":
        assert request.transport is not None
        request.transport.close()  # mid-body: the chunked response never completes
        return response
    if mode == "nousage":
        await response.write(sse(chunk(None, "length")) + b"data: [DONE]\n\n")
    await response.write_eof()
    return response


@pytest_asyncio.fixture(loop_scope="session")
async def stub_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/fail/{tail:.*}", fail)
    app.router.add_post("/{mode}/v1/chat/completions", stream)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def collect(
    provider: Provider, model: str = "stub", params: ChatParams | None = None
) -> tuple[list[StreamEvent], AppError | None]:
    """Every event until the stream ends or fails; the provider is closed afterwards."""
    events: list[StreamEvent] = []
    try:
        async for event in provider.stream_chat(HELLO, model, params or ChatParams()):
            events.append(event)
    except AppError as exc:
        return events, exc
    finally:
        await provider.close()
    return events, None


def compat(url: str) -> OpenAICompatProvider:
    return OpenAICompatProvider("stub", url, "key", timeout_seconds=5, max_retries=0)


async def test_http_500_is_provider_error(stub_url: str) -> None:
    events, error = await collect(compat(f"{stub_url}/fail/v1"))
    assert events == []
    assert error is not None and error.code == PROVIDER_ERROR
    assert error.message.startswith("stub: ") and "boom upstream" in error.message


async def test_connection_dropped_mid_stream_keeps_earlier_deltas(stub_url: str) -> None:
    events, error = await collect(compat(f"{stub_url}/drop/v1"))
    assert events == [TextDelta(text) for text in DELTAS]
    assert error is not None and error.code == PROVIDER_ERROR
    assert error.message.startswith("stub: ")


async def test_stream_ending_without_finish_is_provider_error(stub_url: str) -> None:
    events, error = await collect(compat(f"{stub_url}/truncated/v1"))
    assert events == [TextDelta(text) for text in DELTAS]
    assert error is not None and error.code == PROVIDER_ERROR


async def test_missing_usage_is_estimated(stub_url: str) -> None:
    events, error = await collect(compat(f"{stub_url}/nousage/v1"))
    assert error is None
    assert events[:-1] == [TextDelta(text) for text in DELTAS]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.usage_estimated
    assert end.finish_reason == "length"
    assert end.usage.input_tokens > 0 and end.usage.output_tokens > 0


async def test_unreachable_server_is_provider_error() -> None:
    events, error = await collect(compat(f"{closed_port_url()}/v1"))
    assert events == [] and error is not None and error.code == PROVIDER_ERROR


async def test_groq_error_is_unwrapped_from_aisuite(
    stub_url: str, llm_env: pytest.MonkeyPatch
) -> None:
    llm_env.setenv("GROQ_API_KEY", "gsk-test")
    config = {"base_url": f"{stub_url}/fail", "max_retries": 0}
    provider = AisuiteProvider("groq", client_config=config)
    assert provider.available
    events, error = await collect(provider, "llama-3.1-8b-instant")
    assert events == [] and error is not None and error.code == PROVIDER_ERROR
    # the original SDK message, not aisuite's "An error occurred: ..." wrapper
    assert error.message.startswith("groq: Error code: 500")


async def test_anthropic_stream_error_is_provider_error(llm_env: pytest.MonkeyPatch) -> None:
    llm_env.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    config = {"base_url": closed_port_url(), "max_retries": 0}
    provider = AisuiteProvider("anthropic", client_config=config)
    events, error = await collect(provider, "claude-haiku-4-5-20251001")
    assert events == [] and error is not None and error.code == PROVIDER_ERROR
    assert error.message == "anthropic: Connection error."


async def test_bedrock_with_missing_profile_is_provider_error(
    llm_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    llm_env.setenv("AWS_PROFILE", "parlour-missing")
    llm_env.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    llm_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))
    registry = build_registry(LLMSettings(), None)
    provider, model = registry.resolve("aws:amazon.nova-micro-v1:0")
    assert (provider.name, model) == ("aws", "amazon.nova-micro-v1:0")
    events, error = await collect(provider, model)
    await registry.close()
    assert events == [] and error is not None and error.code == PROVIDER_ERROR
    assert "parlour-missing" in error.message


@pytest.mark.parametrize("model_id", ["gpt-4o", ":gpt-4o", "openai:", "nope:model"])
def test_unknown_models_are_invalid(llm_env: pytest.MonkeyPatch, model_id: str) -> None:
    registry = build_registry(LLMSettings(), None)
    with pytest.raises(AppError) as err:
        registry.resolve(model_id)
    assert err.value.code == INVALID_PAYLOAD and "unknown model" in err.value.message


@pytest.mark.parametrize(
    ("model_id", "hint"),
    [
        ("openai:gpt-4o", "OPENAI_API_KEY"),
        ("anthropic:claude-sonnet-4-5-20250929", "ANTHROPIC_API_KEY"),
        ("groq:llama-3.1-8b-instant", "GROQ_API_KEY"),
        ("aws:amazon.nova-micro-v1:0", "AWS_ACCESS_KEY_ID or AWS_PROFILE"),
        ("local:smollm2", "llama.cpp"),
    ],
)
def test_unconfigured_provider_is_unavailable(
    llm_env: pytest.MonkeyPatch, model_id: str, hint: str
) -> None:
    registry = build_registry(LLMSettings(), None)
    with pytest.raises(AppError) as err:
        registry.resolve(model_id)
    assert err.value.code == UNAVAILABLE
    assert err.value.message.startswith(f"{model_id.split(':')[0]} is not configured")
    assert hint in err.value.message


async def test_injected_and_configured_providers_resolve(llm_env: pytest.MonkeyPatch) -> None:
    llm_env.setenv("OPENAI_API_KEY", "sk-test")
    injected = compat("http://127.0.0.1:9/v1")
    settings = LLMSettings(extra_openai_compatible={"ollama": "http://127.0.0.1:9/v1"})
    registry = build_registry(settings, None, extra={"scripted": injected})
    assert registry.resolve("scripted:any") == (injected, "any")
    assert registry.resolve("ollama:llama3.2:1b")[1] == "llama3.2:1b"
    assert registry.resolve("openai:gpt-4o")[0].name == "openai"
    await registry.close()
