"""The `/v1` gateway through the real `openai` SDK (sync and async), on a live server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from app.llm.base import ToolCall
from tests.client import Parlour, User, start_parlour
from tests.llm_tool_stubs import Call, OpenAIToolStub, Turn, split_args
from tests.scripted_provider import ScriptedProvider
from tests.tool_stubs import serve

FULL = "".join(f"word{i} " for i in range(12))
HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
async def server(make_settings: Any, provider: ScriptedProvider) -> AsyncIterator[Parlour]:
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed", limits__max_message_chars=2000),
        providers={"scripted": provider},
    )
    yield server
    await server.close()


def clients(server: Parlour, key: str) -> tuple[openai.AsyncOpenAI, openai.OpenAI]:
    base = f"{server.url}/v1"
    return (openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0),
            openai.OpenAI(base_url=base, api_key=key, max_retries=0))


async def ledger(server: Parlour, user: User, count: int = 1) -> list[dict[str, Any]]:
    """The user's usage records, once `count` are there (recorded as the call ends)."""
    for _ in range(250):
        found: list[dict[str, Any]] = await server.services.mongo.collection("usage").find(
            {"user_id": user.user_id}).to_list()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} usage records expected")


async def test_models_list_and_retrieve(server: Parlour, llm_env: Any) -> None:
    user = await server.signup()
    client, _ = clients(server, user.token)
    async with client:
        models = [m async for m in client.models.list()]
        ids = {m.id for m in models}
        assert "scripted:fixed" in ids and "local:all-MiniLM-L6-v2" in ids
        assert not any(i.startswith("openai:") for i in ids)  # no OPENAI_API_KEY here
        one = await client.models.retrieve("scripted:fixed")
        assert one.owned_by == "scripted"
        with pytest.raises(openai.NotFoundError) as err:
            await client.models.retrieve("openai:gpt-4o")
        assert err.value.code == "model_not_found"


async def test_chat_sync_and_async_streamed_and_not_with_usage(server: Parlour) -> None:
    user = await server.signup()
    aclient, sclient = clients(server, user.token)
    async with aclient:
        done = await aclient.chat.completions.create(model="scripted:fixed", messages=HI)
        assert done.choices[0].message.content == FULL
        assert done.choices[0].finish_reason == "stop" and done.usage is not None
        assert done.usage.completion_tokens == 12 and done.model == "scripted:fixed"

        stream = await aclient.chat.completions.create(
            model="scripted:fixed", messages=HI, stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == FULL
        assert chunks[-2].choices[0].finish_reason == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 12

    def sync_calls() -> tuple[str, str]:
        with sclient:
            whole = sclient.chat.completions.create(
                model="scripted:fixed", messages=HI, max_completion_tokens=3, temperature=0.2,
            )
            parts = sclient.chat.completions.create(model="scripted:fixed", messages=HI,
                                                    stream=True)
            return whole.choices[0].message.content or "", "".join(
                c.choices[0].delta.content or "" for c in parts if c.choices)

    short, streamed = await asyncio.to_thread(sync_calls)
    assert short == "word0 word1 word2 " and streamed == FULL
    # Counted like every other call: the user's metrics, the ledger, Prometheus.
    await ledger(server, user, count=4)  # a stream's usage is recorded as it ends
    status, metrics = await server.request("GET", "/api/v1/metrics", user)
    assert status == 200 and metrics["answers_by_path"]["gateway"] == 4
    assert metrics["tokens"]["output_tokens"] == 12 * 3 + 3
    async with server.http.get(server.url + "/internal/metrics") as resp:
        prometheus = await resp.text()
    assert 'parlour_assistant_replies_total{finish_reason="stop",path="gateway"} 4.0' in prometheus


async def test_tool_call_round_trip(server: Parlour, provider: ScriptedProvider) -> None:
    provider.tool_script = [(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)] * 2
    user = await server.signup()
    client, _ = clients(server, user.token)
    async with client:
        first = await client.chat.completions.create(
            model="scripted:tools", messages=[{"role": "user", "content": "Paris?"}],
            tools=[WEATHER], tool_choice="auto",
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
        assert provider.params[-1].tools[0].name == "get_weather"
        assert provider.params[-1].tool_choice == "auto"

        # Streamed, the calls arrive as one indexed delta before the finish reason.
        stream = await client.chat.completions.create(
            model="scripted:tools", messages=[{"role": "user", "content": "Paris?"}],
            tools=[WEATHER], stream=True,
        )
        chunks = [c async for c in stream]
        streamed = [c.choices[0].delta.tool_calls for c in chunks
                    if c.choices and c.choices[0].delta.tool_calls]
        assert streamed[0][0].id == "call_1" and streamed[0][0].index == 0
        assert chunks[-1].choices[0].finish_reason == "tool_calls"

        answer = await client.chat.completions.create(
            model="scripted:tools", tools=[WEATHER], messages=[
                {"role": "user", "content": "Paris?"},
                choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
            ],
        )
    assert answer.choices[0].message.content == "Here is what I found: 18C and sunny"
    sent = provider.prompts[-1]
    assert [m.role for m in sent] == ["user", "assistant", "tool"]
    assert sent[1].tool_calls[0].call_id == "call_1" and sent[2].tool_call_id == "call_1"


async def test_openai_fields_reach_an_openai_compatible_provider(
    make_settings: Any, llm_env: Any
) -> None:
    stub = OpenAIToolStub(turns=[
        Turn(calls=(Call("call_9", "get_weather", split_args({"city": "Oslo"})),)),
    ])
    async with serve(stub.app()) as url:
        server = await start_parlour(make_settings(
            llm__extra_openai_compatible={"stub": f"{url}/v1"}))
        try:
            user = await server.signup()
            client, _ = clients(server, user.token)
            async with client:
                done = await client.chat.completions.create(
                    model="stub:any-model", messages=HI, tools=[WEATHER],
                    tool_choice={"type": "function", "function": {"name": "get_weather"}},
                    response_format={"type": "json_object"}, max_tokens=7,
                    top_p=0.5, stop=["\n\n"], seed=3,
                )
        finally:
            await server.close()
    sent = stub.requests[0]
    assert sent["model"] == "any-model" and sent["max_tokens"] == 7
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["top_p"], sent["stop"], sent["seed"]) == (0.5, ["\n\n"], 3)
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    calls = done.choices[0].message.tool_calls or []
    assert calls[0].function.arguments == '{"city": "Oslo"}'  # type: ignore[union-attr]


async def test_errors_in_openai_shape(server: Parlour) -> None:
    user = await server.signup()
    client, _ = clients(server, user.token)
    async with client:
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="nobody:model", messages=HI)
        assert missing.value.code == "model_not_found" and missing.value.param == "model"
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model="scripted:fixed", messages=[])
        assert bad.value.param == "messages" and bad.value.type == "invalid_request_error"
        with pytest.raises(openai.APIStatusError) as big:
            await client.chat.completions.create(
                model="scripted:fixed", messages=[{"role": "user", "content": "x" * 2001}])
        assert big.value.status_code == 413
        assert "limits.max_message_chars" in big.value.message
    for key in ("garbage", user.refresh_token, "plr_not-a-key"):
        bad_client, _ = clients(server, key)
        async with bad_client:
            with pytest.raises(openai.AuthenticationError) as refused:
                await bad_client.chat.completions.create(model="scripted:fixed", messages=HI)
        assert refused.value.code == "invalid_api_key"
        assert set(refused.value.body) == {"message", "type", "code", "param"}  # type: ignore[arg-type]
    async with server.http.get(server.url + "/v1/models") as resp:  # the sign-up cookie
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
    async with server.http.post(server.url + "/v1/chat/completions", data="{}", headers={
            "Authorization": f"Bearer {user.token}", "Content-Type": "text/plain"}) as resp:
        assert resp.status == 415 and (await resp.json())["error"]["type"] \
            == "invalid_request_error"
    async with server.http.get(server.url + "/v1/nothing-here") as resp:
        assert resp.status == 404 and "error" in await resp.json()
    async with server.http.post(server.url + "/v1/models") as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "GET, HEAD"


async def test_concurrency_limit_is_a_rate_limit_error(make_settings: Any) -> None:
    hold = asyncio.Event()
    provider = ScriptedProvider(gate=hold)
    server = await start_parlour(make_settings(limits__max_concurrent_replies=1),
                                 providers={"scripted": provider})
    try:
        user = await server.signup()
        client, _ = clients(server, user.token)
        async with client:
            first = asyncio.create_task(client.chat.completions.create(
                model="scripted:fixed", messages=HI))
            await asyncio.wait_for(provider.started.wait(), 5)
            with pytest.raises(openai.RateLimitError) as limited:
                await client.chat.completions.create(model="scripted:fixed", messages=HI)
            assert limited.value.response.headers["Retry-After"]
            hold.set()
            assert (await first).choices[0].message.content == FULL
    finally:
        await server.close()


async def test_the_message_rate_applies_to_gateway_calls(make_settings: Any) -> None:
    server = await start_parlour(make_settings(limits__messages_per_minute=2),
                                 providers={"scripted": ScriptedProvider()})
    try:
        user = await server.signup()
        client, _ = clients(server, user.token)
        async with client:
            for _ in range(2):
                await client.chat.completions.create(model="scripted:fixed", messages=HI)
            with pytest.raises(openai.RateLimitError) as limited:
                await client.chat.completions.create(model="scripted:fixed", messages=HI)
        assert limited.value.code == "rate_limit_exceeded"
        assert limited.value.response.headers["Retry-After"] == "60"
    finally:
        await server.close()


async def test_provider_failing_mid_stream_raises_and_keeps_partial_usage(
    server: Parlour,
) -> None:
    user = await server.signup()
    client, _ = clients(server, user.token)
    received: list[str] = []
    async with client:
        stream = await client.chat.completions.create(
            model="scripted:fail", messages=HI, stream=True)
        with pytest.raises(openai.APIError) as failed:
            async for chunk in stream:
                if chunk.choices:
                    received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "word0 word1 word2 "
    assert "upstream returned 502" in failed.value.message
    assert failed.value.code == "provider_error"  # type: ignore[attr-defined]
    [record] = await ledger(server, user)
    assert record["status"] == "error" and record["path"] == "gateway"
    assert record["usage"]["output_tokens"] > 0


async def test_embeddings_from_the_configured_backend(server: Parlour) -> None:
    user = await server.signup()
    client, _ = clients(server, user.token)
    async with client:
        result = await client.embeddings.create(
            model="local:all-MiniLM-L6-v2", input=["a cat sat", "a dog ran"])
        assert [len(d.embedding) for d in result.data] == [384, 384]
        assert result.usage.prompt_tokens > 0
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="text-embedding-3-small", input="x")
    [record] = await ledger(server, user)
    assert record["path"] == "embeddings" and record["usage"]["input_tokens"] > 0


async def test_aisuite_chat_still_answers_with_shared_shapes(server: Parlour) -> None:
    user = await server.signup()
    status, data = await server.request("POST", "/api/v1/aisuite/chat", user, json={
        "model": "scripted:fixed", "messages": HI})
    assert status == 200 and data["choices"][0]["message"]["content"] == FULL
    # The REST error shape stays on /api/v1.
    status, data = await server.request("POST", "/api/v1/aisuite/chat", user, json={
        "model": "scripted:fixed", "messages": []})
    assert status == 422 and data["error"]["code"] == "invalid_payload"


async def test_openapi_documents_the_gateway_and_key_routes(server: Parlour) -> None:
    from tests.test_first_http import validator

    user = await server.signup()
    async with server.http.get(server.url + "/openapi.json") as resp:
        spec = await resp.json()
    for path, method in (("/v1/models", "get"), ("/v1/chat/completions", "post"),
                         ("/v1/embeddings", "post"), ("/api/v1/keys", "post"),
                         ("/api/v1/keys", "get"), ("/api/v1/keys/{key_id}", "delete")):
        assert method in spec["paths"][path], path
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert chat["responses"]["default"]["content"]["application/json"]["schema"]["$ref"] \
        .endswith("/OpenAIError")
    client, _ = clients(server, user.token)
    async with client:
        listed = await client.models.with_raw_response.list()
        done = await client.chat.completions.with_raw_response.create(
            model="scripted:fixed", messages=HI)
        vectors = await client.embeddings.with_raw_response.create(
            model="local:all-MiniLM-L6-v2", input="x", encoding_format="float")
    validator(spec, "OpenAIModelList").validate(listed.http_response.json())
    validator(spec, "ChatCompletionAnswer").validate(done.http_response.json())
    validator(spec, "EmbeddingList").validate(vectors.http_response.json())
    async with server.http.post(server.url + "/v1/chat/completions", json={}) as resp:
        validator(spec, "OpenAIError").validate(await resp.json())
    status, created = await server.request("POST", "/api/v1/keys", user, json={"name": "spec"})
    validator(spec, "ApiKeyCreated").validate(created)
    status, keys = await server.request("GET", "/api/v1/keys", user)
    validator(spec, "ApiKeys").validate(keys)
