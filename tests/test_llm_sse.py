"""The OpenAI-compatible provider's own HTTP/SSE reading, against a loopback stub server.

Lines split across TCP writes, comments and `event:` lines, error bodies that are not
JSON, errors sent mid-stream, the one retry before any answer, keep-alive reuse and a
consumer that stops early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio
from aiohttp import web

from app.errors import PAYLOAD_TOO_LARGE, PROVIDER_ERROR
from app.llm.base import ChatMessage, ChatParams, StreamEnd, TextDelta
from app.llm.openai_compat import OpenAICompatProvider
from app.llm.openai_http import MAX_SSE_LINE
from tests.test_llm_errors import DELTAS, chunk, collect, sse

USAGE = {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33,
         "prompt_tokens_details": {"cached_tokens": 12}}


@dataclass
class Stub:
    url: str = ""
    requests: list[tuple[dict[str, str], dict[str, object]]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)
    dropped_first: bool = False
    written: int = 0
    abandoned: asyncio.Event = field(default_factory=asyncio.Event)


async def start(stub: Stub, request: web.Request) -> web.StreamResponse:
    stub.requests.append((dict(request.headers), await request.json()))
    assert request.transport is not None
    stub.peers.append(request.transport.get_extra_info("peername"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


def routes(stub: Stub) -> web.Application:
    async def split(request: web.Request) -> web.StreamResponse:
        """Every line cut in two writes, CRLF endings, comments and `event:` lines."""
        response = await start(stub, request)
        await response.write(b": keep-alive comment\r\n\r\n")
        for text in DELTAS:
            line = sse(chunk(text)).replace(b"\n", b"\r\n")
            for part in (line[:9], line[9:]):
                await response.write(part)
                await asyncio.sleep(0.005)
        await response.write(b"event: ignored\r\n" + sse(chunk(None, "stop")))
        await response.write(sse({**chunk(None), "choices": [], "usage": USAGE}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def plain(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>")

    async def overflow(request: web.Request) -> web.Response:
        return web.json_response({"error": {
            "code": 400, "message": "the request exceeds the available context size, try "
            "increasing it", "type": "exceed_context_size_error",
            "n_prompt_tokens": 9000, "n_ctx": 4096}}, status=400)

    async def midstream(request: web.Request) -> web.StreamResponse:
        response = await start(stub, request)
        await response.write(sse(chunk("partial")))
        await response.write(sse({"error": {"message": "the model crashed", "type": "server"}}))
        await response.write_eof()
        return response

    async def llama_error(request: web.Request) -> web.StreamResponse:
        response = await start(stub, request)
        await response.write(b'error: {"code": 500, "message": "slot failed"}\n\n')
        await response.write_eof()
        return response

    async def flaky(request: web.Request) -> web.StreamResponse:
        """The first connection closes before any answer; the retry gets a stream."""
        if not stub.dropped_first:
            stub.dropped_first = True
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return await split(request)

    async def endless(request: web.Request) -> web.StreamResponse:
        response = await start(stub, request)
        try:
            for _ in range(500):
                await response.write(sse(chunk("t ")))
                stub.written += 1
                await asyncio.sleep(0.01)
        finally:  # a write to the closed connection failed, or the handler was cancelled
            stub.abandoned.set()
        return response

    async def stall(request: web.Request) -> web.StreamResponse:
        response = await start(stub, request)
        await response.write(sse(chunk("first")))
        await asyncio.sleep(2)
        return response

    async def linger(request: web.Request) -> web.StreamResponse:
        """[DONE], then the body does not end for a while."""
        response = await start(stub, request)
        await response.write(sse({**chunk("only", "stop"), "usage": USAGE})
                             + b"data: [DONE]\n\n")
        await asyncio.sleep(1.5)
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        response = await start(stub, request)
        await response.write(b"data: " + b"x" * (MAX_SSE_LINE + 10) + b"\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    for name, handler in (("split", split), ("plain", plain), ("overflow", overflow),
                          ("midstream", midstream), ("llama_error", llama_error),
                          ("flaky", flaky), ("endless", endless), ("stall", stall),
                          ("linger", linger), ("huge", huge)):
        app.router.add_post(f"/{name}/v1/chat/completions", handler)
    return app


@pytest_asyncio.fixture
async def stub() -> AsyncIterator[Stub]:
    state = Stub()
    runner = web.AppRunner(routes(state), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


def provider(stub: Stub, mode: str, *, retries: int = 0, timeout: float = 5,
             context_setting: str | None = None) -> OpenAICompatProvider:
    return OpenAICompatProvider("stub", f"{stub.url}/{mode}/v1", "sk-stub",
                                timeout_seconds=timeout, max_retries=retries,
                                context_setting=context_setting)


async def test_lines_split_across_writes_and_usage_with_cache(stub: Stub) -> None:
    events, error = await collect(provider(stub, "split"), params=ChatParams(max_tokens=5))
    assert error is None
    assert events[:-1] == [TextDelta(text) for text in DELTAS]
    end = events[-1]
    assert isinstance(end, StreamEnd) and not end.usage_estimated
    assert (end.finish_reason, end.usage.input_tokens, end.usage.output_tokens,
            end.usage.cached_tokens) == ("stop", 30, 3, 12)
    headers, body = stub.requests[0]
    assert headers["Authorization"] == "Bearer sk-stub"
    assert headers["Content-Type"] == "application/json"
    assert body == {"model": "stub", "messages": [{"role": "user", "content": "hello"}],
                    "stream": True, "stream_options": {"include_usage": True},
                    "max_tokens": 5}


async def test_connection_is_kept_alive_between_requests(stub: Stub) -> None:
    compat = provider(stub, "split")
    for _ in range(3):
        assert isinstance([e async for e in compat.stream_chat(
            [ChatMessage("user", "hi")], "m", ChatParams())][-1], StreamEnd)
    await compat.close()
    assert len(set(stub.peers)) == 1


async def test_http_error_without_json_names_the_status(stub: Stub) -> None:
    events, error = await collect(provider(stub, "plain"))
    assert events == [] and error is not None and error.code == PROVIDER_ERROR
    assert error.message == "stub: Error code: 502"


async def test_llama_context_overflow_names_the_setting(stub: Stub) -> None:
    compat = provider(stub, "overflow", context_setting="llm.local_context_window")
    events, error = await collect(compat)
    assert events == [] and error is not None and error.code == PAYLOAD_TOO_LARGE
    assert "context window of 4096 tokens (the request needs 9000)" in error.message
    assert "raise llm.local_context_window" in error.message


async def test_error_sent_mid_stream_is_provider_error(stub: Stub) -> None:
    events, error = await collect(provider(stub, "midstream"))
    assert events == [TextDelta("partial")]
    assert error is not None and error.code == PROVIDER_ERROR
    assert error.message == "stub: the model crashed"
    events, error = await collect(provider(stub, "llama_error"))
    assert events == [] and error is not None and error.message == "stub: slot failed"


async def test_one_retry_when_the_connection_fails_before_an_answer(stub: Stub) -> None:
    events, error = await collect(provider(stub, "flaky", retries=1))
    assert error is None and isinstance(events[-1], StreamEnd)
    assert stub.dropped_first and len(stub.requests) == 1
    stub.dropped_first = False
    events, error = await collect(provider(stub, "flaky", retries=0))
    assert events == [] and error is not None and error.code == PROVIDER_ERROR
    assert error.message.startswith("stub: Connection error")


async def test_consumer_stopping_early_closes_the_response(stub: Stub) -> None:
    compat = provider(stub, "endless")
    stream = compat.stream_chat([ChatMessage("user", "hi")], "m", ChatParams())
    async for event in stream:
        assert isinstance(event, TextDelta)
        break
    await stream.aclose()
    await asyncio.wait_for(stub.abandoned.wait(), 3)
    await compat.close()
    assert stub.written < 100


async def test_stalled_stream_and_runaway_line_are_provider_errors(stub: Stub) -> None:
    events, error = await collect(provider(stub, "stall", timeout=0.3))
    assert events == [TextDelta("first")]
    assert error is not None and error.code == PROVIDER_ERROR and "stalled" in error.message
    events, error = await collect(provider(stub, "huge"))
    assert events == [] and error is not None and error.code == PROVIDER_ERROR
    assert "too long" in error.message



async def test_stream_end_does_not_wait_for_the_body_to_end(stub: Stub) -> None:
    compat = provider(stub, "linger")
    started = time.monotonic()
    arrivals: list[float] = []
    async for event in compat.stream_chat([ChatMessage("user", "hi")], "m", ChatParams()):
        arrivals.append(time.monotonic() - started)
        if isinstance(event, StreamEnd):
            assert event.finish_reason == "stop" and not event.usage_estimated
    await compat.close()
    assert len(arrivals) == 2 and arrivals[-1] < 0.3
    assert time.monotonic() - started < 1.4  # the wait for the body's end is short
