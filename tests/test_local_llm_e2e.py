"""End to end through the real path: the openai SDK against llama.cpp's server with SmolLM2."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from app.llm.openai_compat import OpenAICompatProvider
from tests.client import Parlour, start_parlour
from tests.servers import free_port, wait_port


async def test_room_reply_from_the_local_model(
    make_settings: Any, local_provider: OpenAICompatProvider
) -> None:
    server = await start_parlour(
        make_settings(assistant__max_output_tokens=24), providers={"local": local_provider}
    )
    try:
        user = await server.signup()
        s = await server.socket(user)
        room_id = (await s.ok("create_room", {"model": "local:smollm2"}))["room"]["room_id"]
        await s.ok("send_message", {"room_id": room_id, "content": "Name a colour."})
        (done,) = await s.wait("assistant_done", timeout=60)
        message = done["message"]
        deltas = [d for d in s.named("assistant_delta") if d["message_id"] == message["message_id"]]
        assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1)) and deltas
        assert "".join(d["delta"] for d in deltas) == message["content"] != ""
        assert done["finish_reason"] in ("stop", "length") and message["status"] == "complete"
        assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0
        assert message["usage"]["cost_usd"] == 0
        status, data = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
        assert data["messages"][-1]["content"] == message["content"]
    finally:
        await server.close()


async def test_openai_shaped_chat_against_the_local_model(
    make_settings: Any, local_provider: OpenAICompatProvider
) -> None:
    server = await start_parlour(make_settings(), providers={"local": local_provider})
    try:
        user = await server.signup()
        status, data = await server.request("POST", "/api/v1/aisuite/chat", user, json={
            "model": "local:smollm2", "max_tokens": 16,
            "messages": [{"role": "user", "content": "Say hello."}],
        })
        assert status == 200 and data["choices"][0]["message"]["content"]
        assert data["usage"]["completion_tokens"] > 0
    finally:
        await server.close()


async def test_make_run_default_answers_without_any_key(tmp_path: Path) -> None:
    """`parlour serve` with no configuration starts llama.cpp and answers a question."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PARLOUR_") and not k.endswith("_API_KEY")}
    env["PARLOUR_ASSISTANT__MAX_OUTPUT_TOKENS"] = "16"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "parlour"), "serve", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.to_thread(wait_port, port, 120, proc)
        server = Parlour.__new__(Parlour)
        server.url, server._sockets = f"http://127.0.0.1:{port}", []
        server.http = aiohttp.ClientSession()
        try:
            status, health = await server.request("GET", "/internal/health")
            assert health["status"] == "ok", health
            assert health["checks"]["llm"]["detail"].startswith("local:smollm2: llama-server")
            user = await server.signup()
            s = await server.socket(user)
            room = (await s.ok("create_room", {}))["room"]
            assert room["model"] is None  # the server default: local:smollm2
            await s.ok("send_message", {"room_id": room["room_id"], "content": "Hi!"})
            (done,) = await s.wait("assistant_done", timeout=60)
            assert done["message"]["model"] == "local:smollm2"
            assert done["message"]["content"] and s.named("assistant_delta")
            await s.disconnect()
        finally:
            await server.http.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, None, 30)
    assert proc.returncode == 0, out.decode()[-3000:]
