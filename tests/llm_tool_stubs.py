"""Loopback stand-ins for LLM APIs that stream tool calls: OpenAI-compatible and Anthropic.

Each request takes the next scripted turn: text, or tool calls whose arguments are sent
in several pieces, the way each API streams them. Requests are recorded so tests can
check what the provider sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Call:
    call_id: str
    name: str
    pieces: tuple[str, ...]  # the JSON arguments, split


@dataclass(frozen=True)
class Turn:
    text: tuple[str, ...] = ()
    calls: tuple[Call, ...] = ()


def split_args(arguments: dict[str, Any], size: int = 7) -> tuple[str, ...]:
    """JSON arguments cut into pieces of `size` characters, as OpenAI streams them."""
    text = json.dumps(arguments)
    return tuple(text[i : i + size] for i in range(0, len(text), size))


@dataclass
class OpenAIToolStub:
    turns: list[Turn | Callable[[dict[str, Any]], Turn]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        return app

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not self.turns:
            return web.json_response({"error": {"message": "no scripted turn left"}}, status=500)
        turn = self.turns.pop(0)
        if callable(turn):
            turn = turn(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body["model"]}

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            if self.delay:
                await asyncio.sleep(self.delay)
            chunk = {**base, "choices": choices, **extra}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send([{"index": 0, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": None}])
        for piece in turn.text:
            await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        for index, call in enumerate(turn.calls):
            await send([{"index": 0, "finish_reason": None, "delta": {"tool_calls": [{
                "index": index, "id": call.call_id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}]}}])
            for piece in call.pieces:
                await send([{"index": 0, "finish_reason": None, "delta": {"tool_calls": [{
                    "index": index, "function": {"arguments": piece}}]}}])
        finish = "tool_calls" if turn.calls else "stop"
        await send([{"index": 0, "delta": {}, "finish_reason": finish}])
        if (body.get("stream_options") or {}).get("include_usage"):
            await send([], usage={"prompt_tokens": 50, "completion_tokens": 10,
                                  "total_tokens": 60})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@dataclass
class AnthropicToolStub:
    """Anthropic's /v1/messages streaming: text blocks, then `tool_use` blocks whose input
    arrives as `input_json_delta` pieces, then `message_delta` with the stop reason."""

    turns: list[Turn] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        keys = {request.headers.get("x-api-key"), request.headers.get("Authorization")}
        if not keys & {"test-key", "Bearer test-key"} or not self.turns:
            return web.json_response({"type": "error", "error": {
                "type": "authentication_error", "message": "bad key or no turn"}}, status=401)
        turn = self.turns.pop(0)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(kind: str, data: dict[str, Any]) -> None:
            payload = json.dumps({"type": kind, **data})
            await response.write(f"event: {kind}\ndata: {payload}\n\n".encode())

        await send("message_start", {"message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 40, "output_tokens": 1}}})
        index = 0
        if turn.text:
            await send("content_block_start", {"index": index,
                                               "content_block": {"type": "text", "text": ""}})
            for piece in turn.text:
                await send("content_block_delta", {"index": index, "delta": {
                    "type": "text_delta", "text": piece}})
            await send("content_block_stop", {"index": index})
            index += 1
        for call in turn.calls:
            await send("content_block_start", {"index": index, "content_block": {
                "type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}})
            for piece in call.pieces:
                await send("content_block_delta", {"index": index, "delta": {
                    "type": "input_json_delta", "partial_json": piece}})
            await send("content_block_stop", {"index": index})
            index += 1
        await send("message_delta", {
            "delta": {"stop_reason": "tool_use" if turn.calls else "end_turn",
                      "stop_sequence": None},
            "usage": {"output_tokens": 12}})
        await send("message_stop", {})
        await response.write_eof()
        return response
