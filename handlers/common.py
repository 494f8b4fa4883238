"""Shared REST plumbing: the error middleware, JSON bodies, the caller's identity."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel

from app.auth import Authenticator
from app.errors import (
    DEFAULT_RETRY_AFTER,
    INTERNAL,
    INVALID_PAYLOAD,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    UNAUTHORIZED,
    AppError,
    error_from_exception,
)
from app.keys import SERVICES, SETTINGS
from app.limits import transport_cap_bytes
from app.models import Principal
from app.openai_api import openai_error
from app.schemas import parse
from app.services import Services
from handlers.multipart import MultipartCaps, form_fields
from handlers.origins import unsupported_media_type

log = logging.getLogger("parlour.http")

OPENAI_PATH = "/v1/"  # the gateway: errors in OpenAI's shape, whoever raises them

T = TypeVar("T", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What auth_middleware found: the caller, or why there is none.
PRINCIPAL: web.RequestKey[Principal | AppError] = web.RequestKey("principal")

_HTTP_CODES = {404: NOT_FOUND, 405: INVALID_PAYLOAD, 413: PAYLOAD_TOO_LARGE, 401: UNAUTHORIZED}


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json"
    )


def error_response(err: AppError, *, openai: bool = False) -> web.Response:
    """`{"error": {"code", "message"}}` with the code's HTTP status (429s with Retry-After).

    `openai`: OpenAI's shape and status instead (the `/v1` gateway).
    """
    if openai:
        status, data = openai_error(err)
        response = json_response(data, status=status)
    else:
        response = json_response({"error": err.as_dict()}, status=err.status)
    if response.status == 429:
        response.headers["Retry-After"] = str(err.retry_after or DEFAULT_RETRY_AFTER)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON error with a stable code; one log line per request."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400 or exc.status == 101:
            raise
        code = _HTTP_CODES.get(exc.status, INVALID_PAYLOAD if exc.status < 500 else INTERNAL)
        return error_response(AppError(code, exc.reason, status=exc.status),
                              openai=request.path.startswith(OPENAI_PATH))
    except Exception as exc:
        if isinstance(exc, ValueError) and request.path.endswith("/socket.io/"):
            # Engine.IO raises on a malformed packet in a WebSocket it already upgraded.
            log.warning("malformed Engine.IO packet from %s: %.200s", request.remote, exc)
            status = 400
            return error_response(AppError(INVALID_PAYLOAD, "malformed Engine.IO packet"))
        err = error_from_exception(exc)
        if err.code == INTERNAL:
            log.exception("%s %s failed", request.method, request.path)
        status = err.status
        services = request.app.get(SERVICES)
        if services is not None:
            services.metrics.error(err.code)
        return error_response(err, openai=request.path.startswith(OPENAI_PATH))
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        services = request.app.get(SERVICES)
        if services is not None:
            services.metrics.request(request.method, status)
        log.info(
            "%s %s status=%d duration_ms=%.1f", request.method, request.path, status, elapsed,
            extra={"method": request.method, "path": request.path, "status": status,
                   "duration_ms": round(elapsed, 1)},
        )


def services(request: web.Request) -> Services:
    """The app's services."""
    return request.app[SERVICES]


async def body(request: web.Request, model: type[T]) -> T:
    """The request's JSON body validated by `model` (415 unless its type is JSON)."""
    raw = await request.read()
    if raw and not is_json(request.content_type):
        raise unsupported_media_type(request.content_type, "application/json")
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise AppError(INVALID_PAYLOAD, "body: not valid JSON") from exc
    return parse(model, data)


def is_json(content_type: str) -> bool:
    """application/json or a `+json` type."""
    return content_type == "application/json" or content_type.endswith("+json")


async def form(request: web.Request) -> dict[str, str]:
    """The urlencoded or multipart form fields; a malformed body is `invalid_payload`."""
    limits = request.app[SETTINGS].limits
    if request.content_type.startswith("multipart/"):
        caps = MultipartCaps.for_fields(limits, transport_cap_bytes(limits))
        return await form_fields(request, caps)
    raw = await request.read()  # within client_max_size; post() reuses it
    if raw.count(b"&") >= limits.max_multipart_parts:
        raise AppError(
            PAYLOAD_TOO_LARGE,
            f"body: more than {limits.max_multipart_parts} fields (limits.max_multipart_parts)",
        )
    try:
        data = await request.post()
    except (ValueError, AssertionError, KeyError) as exc:
        raise AppError(INVALID_PAYLOAD, "body: malformed form data") from exc
    return {k: v for k, v in data.items() if isinstance(v, str)}


def query(request: web.Request, model: type[T]) -> T:
    """The query string validated by `model`."""
    return parse(model, dict(request.query))


def bearer_token(request: web.Request) -> str | None:
    """The access token from the Authorization header or the cookie."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get("access_token")


@web.middleware
def auth_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Authenticate the caller's credential once, before the handler (see `principal`).

    A bad credential is only an error for routes that ask who is calling: a stale cookie
    must not break the log-in page. Without a credential to check (and on Socket.IO,
    which authenticates its own way) nothing is stored (`principal` answers "missing
    token") and the handler's awaitable is handed back: nothing of ours stays alive
    for a WebSocket's life (10,000 idle sockets: ~1 KB each).
    """
    token = bearer_token(request)
    svc = request.app.get(SERVICES)
    if token and svc is not None and not request.path.startswith("/socket.io/"):
        return _authenticated(request, handler, svc.authenticator, token)
    return handler(request)


async def _authenticated(
    request: web.Request, handler: Handler, authenticator: Authenticator, token: str
) -> web.StreamResponse:
    outcome: Principal | AppError
    try:
        outcome = await authenticator.authenticate(token)
    except AppError as exc:
        outcome = exc
    request[PRINCIPAL] = outcome
    return await handler(request)


def principal(request: web.Request) -> Principal:
    """The verified caller; `unauthorized` otherwise."""
    outcome = request.get(PRINCIPAL)
    if isinstance(outcome, Principal):
        return outcome
    if isinstance(outcome, AppError):
        raise outcome
    raise AppError(UNAUTHORIZED, "missing token")


def cookie_path(request: web.Request, path: str) -> str:
    """A cookie path under `server.base_path` (the browser sees the prefixed URLs)."""
    base = request.app[SETTINGS].server.base_path
    return (base + path).rstrip("/") or "/" if base else path


def client_ip(request: web.Request) -> str:
    """The peer address (proxies are not trusted by default)."""
    return request.remote or "unknown"


def cors_middleware(origins: list[str]) -> Any:
    """Allow the configured browser origins to call the API with credentials."""
    allowed = set(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin in allowed:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = request.headers.get(
                "Access-Control-Request-Headers", "Authorization, Content-Type"
            )
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = str(origin)
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Vary"] = "Origin"
        return response

    return middleware


__all__ = ["SETTINGS", "body", "json_response", "principal", "query", "services"]
