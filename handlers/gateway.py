"""The OpenAI-compatible gateway: `/v1/models`, `/v1/chat/completions`, `/v1/embeddings`.

Answers and errors are in OpenAI's shapes (`{"error": {message, type, code, param}}`
with OpenAI's statuses), so the official SDKs raise their usual exceptions.
"""

from __future__ import annotations

import base64
import functools
import logging
import struct
import time
from contextlib import aclosing

from aiohttp import web

from app.errors import (
    INTERNAL,
    INVALID_PAYLOAD,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    UNAUTHORIZED,
    AppError,
    error_from_exception,
)
from app.gateway import GatewayService
from app.ids import new_id
from app.models import Principal
from app.openai_api import (
    ChatCompletionRequest,
    EmbeddingRequest,
    completion_body,
    completion_chunks,
    openai_error,
)
from handlers.ai import sse_response, sse_send
from handlers.common import (
    Handler,
    body,
    error_response,
    json_response,
    principal,
    services,
)

log = logging.getLogger("parlour.http")

_HTTP_CODES = {401: UNAUTHORIZED, 404: NOT_FOUND, 413: PAYLOAD_TOO_LARGE}


def openai_response(err: AppError) -> web.Response:
    """An error in OpenAI's shape (429s with Retry-After)."""
    return error_response(err, openai=True)


def openai_errors(handler: Handler) -> Handler:
    """Turn every failure of a `/v1` handler into OpenAI's error shape."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ConnectionResetError:
            raise  # the client went away mid-answer: nobody to answer
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, INVALID_PAYLOAD if exc.status < 500 else INTERNAL)
            err = AppError(code, exc.reason, status=exc.status)
        except Exception as exc:
            err = error_from_exception(exc)
            if err.code == INTERNAL:
                log.exception("%s %s failed", request.method, request.path)
        services(request).metrics.error(err.code)
        return openai_response(err)

    return wrapped


def caller(request: web.Request) -> Principal:
    """The caller of a `/v1` route: the `Authorization` header only, as OpenAI clients send
    it (never the web client's cookie, so a page elsewhere cannot spend on your behalf)."""
    if not request.headers.get("Authorization", "").lower().startswith("bearer "):
        raise AppError(UNAUTHORIZED, "no API key: send `Authorization: Bearer plr_...`")
    return principal(request)


def gateway(request: web.Request) -> GatewayService:
    """The gateway service (built in services_ctx)."""
    svc = services(request).gateway
    if svc is None:
        raise AppError("unavailable", "the gateway is not configured")
    return svc


@openai_errors
async def list_models(request: web.Request) -> web.Response:
    caller(request)
    return json_response({"object": "list", "data": gateway(request).models()})


@openai_errors
async def get_model(request: web.Request) -> web.Response:
    caller(request)
    return json_response(gateway(request).model(request.match_info["model"]))


@openai_errors
async def chat_completions(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    req = await body(request, ChatCompletionRequest)
    async with gateway(request).chat(who, req) as run:
        head = {"id": f"chatcmpl-{new_id()[:24]}", "created": int(time.time()),
                "model": run.model_id}
        if not req.stream:
            async for _ in run.events:
                pass
            return json_response(completion_body(head, run.text, run.end))
        include_usage = req.stream_options is not None and req.stream_options.include_usage
        async with aclosing(completion_chunks(
            head, run.events, include_usage=include_usage
        )) as chunks:
            # The first chunk that carries something comes before the response starts: a
            # provider refusing at once is still an HTTP error with its status.
            first = await anext(chunks)
            second = await anext(chunks, None)
            response = await sse_response(request)
            try:
                await sse_send(response, first)
                if second is not None:
                    await sse_send(response, second)
                    async for chunk in chunks:
                        await sse_send(response, chunk)
            except ConnectionResetError:
                raise
            except Exception as exc:
                # The SDKs raise on a `data: {"error": ...}` line (openai.APIError).
                err = error_from_exception(exc)
                if err.code == INTERNAL:
                    log.exception("chat completion stream failed")
                services(request).metrics.error(err.code)
                await sse_send(response, openai_error(err)[1])
            await sse_send(response, b"[DONE]")
            return response


def _base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: "base64"`: little-endian float32s (what the SDKs ask for)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@openai_errors
async def embeddings(request: web.Request) -> web.Response:
    who = caller(request)
    req = await body(request, EmbeddingRequest)
    svc = gateway(request)
    vectors, tokens = await svc.embed(who, req)
    encode = _base64 if req.encoding_format == "base64" else None
    return json_response({
        "object": "list", "model": svc.embedding_model,
        "data": [{"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
                 for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


@openai_errors
async def unknown(request: web.Request) -> web.Response:
    """404 (or 405 naming the methods) under /v1, in OpenAI's shape."""
    here = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not here and resource.canonical.startswith("/v1/"):
            allowed |= (await resource.resolve(request))[1]
    if not allowed:
        raise AppError(NOT_FOUND, f"unknown route {request.method} {request.path}")
    methods = ", ".join(sorted(allowed))
    err = AppError(INVALID_PAYLOAD, f"{request.method} is not allowed on {request.path}; "
                   f"use {methods}", status=405)
    response = openai_response(err)
    response.headers["Allow"] = methods
    return response


def setup(app: web.Application) -> None:
    """Register the `/v1` routes (before the web client's catch-all)."""
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_route("*", "/v1/{tail:.*}", unknown)
