"""AI routes: model catalog, usage, OpenAI-shaped chat, /run, session ids."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import asdict
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import Field

from app.assistant.completion import Completion
from app.assistant.listeners import ReplyEvent
from app.errors import AppError, error_from_exception, invalid
from app.files import UploadPart
from app.ids import new_id
from app.llm.base import ChatMessage, ChatParams, StreamEnd, TokenUsage
from app.media.attachments import Attachment, attachment_type, media_kind
from app.models import Message, Principal
from app.schemas import Payload
from app.services import Services
from handlers.common import body, json_response, principal, query, services
from handlers.files import file_service
from handlers.run_input import RunInput, read_run_input


class ModelPage(Payload):
    page: int = Field(1, ge=1)
    page_size: int = Field(50, ge=1, le=200)


class MetricsQuery(Payload):
    days: int = Field(30, ge=1, le=366)


class Turn(Payload):
    role: Literal["system", "user", "assistant"]
    content: str  # the total is bounded by limits.max_message_chars


class ChatCompletion(Payload):
    messages: list[Turn] = Field(min_length=1, max_length=500)
    model: str = Field(min_length=3)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    stream: bool = False


async def sse_response(request: web.Request) -> web.StreamResponse:
    """A prepared text/event-stream response."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    return response


async def sse_send(response: web.StreamResponse, data: Any, event: str | None = None) -> None:
    """One server-sent event."""
    head = f"event: {event}\n".encode() if event else b""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    await response.write(head + b"data: " + payload + b"\n\n")


def _openai_usage(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


async def list_models(request: web.Request) -> web.Response:
    q = query(request, ModelPage)
    principal(request)
    models, total = services(request).registry.catalog(q.page, q.page_size)
    return json_response(
        {"models": models, "page": q.page, "page_size": q.page_size, "total": total}
    )


async def message_usage(request: web.Request) -> web.Response:
    data = await services(request).usage.message_usage(
        principal(request), request.match_info["message_id"]
    )
    return json_response(data)


async def chat_usage(request: web.Request) -> web.Response:
    data = await services(request).usage.chat_usage(
        principal(request), request.match_info["chat_id"]
    )
    return json_response(data)


async def user_metrics(request: web.Request) -> web.Response:
    q = query(request, MetricsQuery)
    return json_response(await services(request).usage.metrics(principal(request), days=q.days))


async def chat_metrics(request: web.Request) -> web.Response:
    data = await services(request).usage.metrics(principal(request), request.match_info["chat_id"])
    return json_response(data)


async def session_id(request: web.Request) -> web.Response:
    """A new session id; a GET changes nothing: the room is made when a WebSocket opens."""
    principal(request)
    return json_response({"session_id": new_id()})


async def aisuite_chat(request: web.Request) -> web.StreamResponse:
    """OpenAI-shaped chat completion through any configured provider (SSE when streaming)."""
    who = principal(request)
    req = await body(request, ChatCompletion)
    messages = [ChatMessage(role=t.role, content=t.content) for t in req.messages]
    params = ChatParams(temperature=req.temperature, max_tokens=req.max_tokens)
    async with services(request).stateless.chat(who, req.model, messages, params) as run:
        ident, created = f"chatcmpl-{new_id()[:24]}", int(time.time())
        head = {"id": ident, "created": created, "model": run.model_id}
        if not req.stream:
            async for _ in run.events:
                pass
            end = run.end
            usage = end.usage if end else TokenUsage(0, 0)
            return json_response({
                **head, "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": end.finish_reason if end else "stop",
                             "message": {"role": "assistant", "content": run.text}}],
                "usage": _openai_usage(usage),
            })
        response = await sse_response(request)
        chunk = {**head, "object": "chat.completion.chunk"}
        try:
            async for event in run.events:
                if isinstance(event, StreamEnd):
                    last = {"index": 0, "delta": {}, "finish_reason": event.finish_reason}
                    await sse_send(response, {
                        **chunk, "usage": _openai_usage(event.usage), "choices": [last],
                    })
                else:
                    await sse_send(response, {**chunk, "choices": [
                        {"index": 0, "delta": {"content": event.text}, "finish_reason": None}]})
        except Exception as exc:
            await sse_send(response, {"error": error_from_exception(exc).as_dict()}, event="error")
        await sse_send(response, b"[DONE]")
        return response


async def run(request: web.Request) -> web.StreamResponse:
    """Ask once: in a chat (stored, answered by the room's assistant) or stateless."""
    who = principal(request)
    req = await read_run_input(request)
    stream = "text/event-stream" in request.headers.get("Accept", "")
    return await _answer(request, stream, await run_events(request, who, req))


async def run_events(
    request: web.Request, who: Principal, req: RunInput
) -> AsyncGenerator[dict[str, Any], None]:
    svc = services(request)
    await _spoken_question(svc, who, req)
    if req.chat_id is None:
        return _stateless_run(svc, who, req)
    file_ids: list[str] = []
    if req.attachments:
        # Attached in a chat, they are the chat's files (listed, downloadable, searchable).
        records = await file_service(request).upload_to_chat(
            who, req.chat_id, _parts(req.attachments))
        file_ids = [r.file_id for r in records]
    return _in_room(svc.ask.ask(who, req.chat_id, req.text, model=req.model, kind="run",
                                file_ids=file_ids))


async def _spoken_question(svc: Services, who: Principal, req: RunInput) -> None:
    """A question asked aloud (no text, only audio): its transcript becomes the text."""
    if req.text.strip() or not req.attachments or svc.speech is None:
        return
    kinds = [(a, attachment_type(a)) for a in req.attachments]
    if not all(media_kind(a, ctype) == "audio" for a, ctype in kinds):
        return
    texts = [await svc.speech.transcribe(who, a.data, ctype or "audio/wav", a.filename)
             for a, ctype in kinds]
    req.text = " ".join(t for t in texts if t).strip()
    if not req.text:
        raise invalid(f"{req.attachments[0].filename}: no speech was recognised")
    req.attachments = []


async def _parts(attachments: list[Attachment]) -> AsyncIterator[UploadPart]:
    for attachment in attachments:
        yield UploadPart(attachment.filename, attachment.content_type, _once(attachment.data))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _stateless_run(
    svc: Services, who: Principal, req: RunInput
) -> AsyncGenerator[dict[str, Any], None]:
    # The asker's documents are searched, as in their private chats.
    async with (svc.stateless.run(who, req.text, req.model, req.attachments) as run,
                aclosing(_stateless(svc, run)) as events):
        async for item in events:
            yield item


async def _stateless(svc: Services, run: Completion) -> AsyncGenerator[dict[str, Any], None]:
    sources = [s.model_dump(mode="json") for s in run.sources]
    async for event in run.events:
        if isinstance(event, StreamEnd):
            cost = svc.registry.cost_usd(run.model_id, event.usage)
            yield {"done": True, "usage": {**asdict(event.usage), "cost_usd": cost},
                   "sources": sources, "model": run.model_id}
        else:
            yield {"delta": event.text}


async def _in_room(
    events: AsyncGenerator[tuple[Message | None, ReplyEvent], None],
) -> AsyncGenerator[dict[str, Any], None]:
    async with aclosing(events):
        async for _, event in events:
            if event.kind == "delta":
                yield {"delta": event.delta}
            elif event.kind == "done" and event.message is not None:
                if event.error is not None:
                    raise event.error
                message = event.message.model_dump(mode="json")
                yield {"done": True, "usage": message["usage"],
                       "sources": message["sources"] or [], "model": message["model"],
                       "message_id": message["message_id"], "answer": message["content"]}


async def _answer(
    request: web.Request, stream: bool, events: AsyncGenerator[dict[str, Any], None]
) -> web.StreamResponse:
    async with aclosing(events):
        if not stream:
            parts: list[str] = []
            async for item in events:
                if "delta" in item:
                    parts.append(item["delta"])
                else:
                    item.pop("done")
                    item.setdefault("answer", "".join(parts))
                    return json_response(item)
            raise AppError("provider_error", "the reply ended without a result")
        # The first item before the response starts: a refusal (busy, over a limit, no
        # reply started in time) is still an HTTP error with its status.
        nothing: dict[str, Any] = {}
        item = await anext(events, nothing)
        response = await sse_response(request)
        try:
            while item is not nothing:
                await sse_send(response, item, event="done" if "done" in item else "delta")
                item = await anext(events, nothing)
        except Exception as exc:
            await sse_send(response, {"error": error_from_exception(exc).as_dict()}, event="error")
        return response


def setup(app: web.Application) -> None:
    """Register the AI routes."""
    app.router.add_get("/api/v1/model", list_models)
    app.router.add_get("/api/v1/messages/{message_id}/usage", message_usage)
    app.router.add_get("/api/v1/chat/{chat_id}/usage", chat_usage)
    app.router.add_get("/api/v1/session_id", session_id)
    app.router.add_get("/api/v1/metrics", user_metrics)
    app.router.add_get("/api/v1/metrics/sessions/{chat_id}", chat_metrics)
    app.router.add_post("/api/v1/aisuite/chat", aisuite_chat)
    app.router.add_post("/api/v1/run", run)
