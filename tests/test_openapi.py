"""The REST API against its own OpenAPI description: fuzzed by schemathesis, never a 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from aiohttp import web

from app.config import load_settings
from app.main import create_app
from handlers.openapi import build_spec
from tests.servers import free_port, wait_port

BIN = Path(sys.executable).parent


def stub_provider() -> web.Application:
    """An OpenAI-compatible chat endpoint that streams one short answer, at once."""

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                "model": body.get("model", "fast")}
        if not body.get("stream"):
            return web.json_response({
                **base, "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for choices, extra in (
            ([{"index": 0, "delta": {"role": "assistant", "content": "ok"},
               "finish_reason": None}], {}),
            ([{"index": 0, "delta": {}, "finish_reason": "stop"}], {}),
            ([], {"usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}),
        ):
            chunk = {**base, "choices": choices, **extra}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


def _signup(url: str) -> str:
    req = urllib.request.Request(
        f"{url}/api/v1/auth/signup", method="POST",
        data=json.dumps({"email": f"fuzz{uuid.uuid4().hex[:6]}@example.com",
                         "password": "long enough", "name": "Fuzz"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.load(resp)["access_token"])


async def test_fuzzed_requests_never_crash_the_server(mongo_uri: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLOUR_")}
    stub = web.AppRunner(stub_provider())
    await stub.setup()
    stub_port = free_port()
    await web.TCPSite(stub, "127.0.0.1", stub_port).start()
    env.update({
        "PARLOUR_MONGO__URI": mongo_uri, "PARLOUR_MONGO__DATABASE": f"fz{uuid.uuid4().hex[:8]}",
        "PARLOUR_AUTH__JWT_SECRET": "fuzz-secret-0123456789-0123456789",
        # A fast OpenAI-compatible stub answers /run, chats and /aisuite/chat at once.
        "PARLOUR_LLM__LOCAL_ENABLED": "false",
        "PARLOUR_LLM__EXTRA_OPENAI_COMPATIBLE": f'{{"stub": "http://127.0.0.1:{stub_port}/v1"}}',
        "PARLOUR_LLM__DEFAULT_MODEL": "stub:fast", "PARLOUR_SERVER__LOG_LEVEL": "WARNING",
        "PARLOUR_LIMITS__MESSAGES_PER_MINUTE": "100000",
    })
    server = subprocess.Popen(
        [str(BIN / "parlour"), "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.to_thread(wait_port, port, 60, server)
        token = await asyncio.to_thread(_signup, url)
        fuzz = await asyncio.create_subprocess_exec(
            str(BIN / "schemathesis"), "run", f"{url}/openapi.json",
            "--checks", "not_a_server_error", "--max-examples", "5",
            "-H", f"Authorization: Bearer {token}", "--request-timeout", "20",
            # Speech needs real audio (and speaks each fuzzed answer on the CPU):
            # tests/test_media_speech.py covers it; /v1/embeddings would embed up to 2,048
            # texts per case on the CPU: tests/test_gateway.py covers it.
            "--exclude-path-regex", "audio|embeddings",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        out, _ = await asyncio.wait_for(fuzz.communicate(), 300)
        report = out.decode(errors="replace")
        assert fuzz.returncode == 0, report[-4000:]
        tested = re.search(r"Tested: (\d+)", report)
        assert tested is not None and int(tested.group(1)) >= 20, report[-2000:]
    finally:
        server.send_signal(signal.SIGTERM)
        log, _ = await asyncio.to_thread(server.communicate, None, 30)
        await stub.cleanup()
    # No handler of ours logged an unexpected exception (aiohttp's own parser may log
    # the malformed requests it refuses with 400).
    ours = [line for line in log.decode().splitlines()
            if '"level":"ERROR"' in line and '"logger":"aiohttp' not in line]
    assert ours == [], "\n".join(ours)[-3000:]


# Routes that are not REST: the Socket.IO endpoint, the plain WebSocket, the API's own
# description, and the web client's static files.
NOT_REST = {"/socket.io/", "/api/v1/ws/chat", "/openapi.json", "/docs", "/{path}"}


def test_openapi_lists_exactly_the_routers_routes() -> None:
    settings = load_settings(None, llm__local_enabled=False, auth__jwt_secret="x" * 40)
    app = create_app(settings)
    router = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method not in ("HEAD", "OPTIONS", "*")
        and route.resource.canonical not in NOT_REST
    }
    spec = {(method, path) for path, ops in build_spec()["paths"].items() for method in ops}
    assert router - spec == set(), "routes missing from /openapi.json"
    assert spec - router == set(), "/openapi.json lists routes the router does not have"
