"""Done when (issue 14): the OpenAI SDK with a `plr_` key streams from the embedded model."""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from app.llm.openai_compat import OpenAICompatProvider
from tests.client import start_parlour


async def test_openai_sdk_with_a_key_streams_from_the_local_model_until_revoked(
    make_settings: Any, local_provider: OpenAICompatProvider
) -> None:
    server = await start_parlour(make_settings(), providers={"local": local_provider})
    try:
        user = await server.signup()
        status, created = await server.request("POST", "/api/v1/keys", user,
                                               json={"name": "sdk"})
        assert status == 201
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=created["key"],
                               max_retries=0)

        def ask() -> tuple[list[str], int]:
            stream = client.chat.completions.create(
                model="local:smollm2", max_tokens=16, stream=True,
                stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "Say hello."}],
            )
            parts, tokens = [], 0
            for chunk in stream:
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
                elif chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
            return parts, tokens

        parts, tokens = await asyncio.to_thread(ask)
        assert "".join(parts).strip() and len(parts) > 2 and tokens > 0  # streamed, not whole
        for _ in range(100):  # the usage is recorded as the call ends
            status, metrics = await server.request("GET", "/api/v1/metrics", user)
            if metrics["answers"]:
                break
            await asyncio.sleep(0.05)
        assert metrics["answers_by_path"] == {"gateway": 1}
        assert metrics["tokens"]["output_tokens"] == tokens

        status, _ = await server.request("DELETE", f"/api/v1/keys/{created['id']}", user)
        assert status == 204
        try:
            await asyncio.to_thread(ask)
            raise AssertionError("a revoked key answered")
        except openai.AuthenticationError as exc:
            assert exc.code == "invalid_api_key"
        client.close()
    finally:
        await server.close()
