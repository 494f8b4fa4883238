"""Personal API keys: `/api/v1/keys`, and the middleware that checks `plr_` bearer keys."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import Field

from app.api_keys import KEY_PREFIX, ApiKeyService
from app.errors import INTERNAL, UNAVAILABLE, AppError, error_from_exception
from app.keys import API_KEY_PRINCIPAL, SERVICES
from app.schemas import Payload
from handlers.common import Handler, bearer_token, body, json_response, principal, services

log = logging.getLogger("parlour.http")


class CreateKey(Payload):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


def api_keys(request: web.Request) -> ApiKeyService:
    """The key service (built in services_ctx)."""
    keys = services(request).api_keys
    if keys is None:
        raise AppError(UNAVAILABLE, "API keys are not available")
    return keys


@web.middleware
async def api_key_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve a `plr_` bearer key once per request (`principal()` reads the outcome)."""
    token = bearer_token(request)
    svc = request.app.get(SERVICES)
    if token is not None and token.startswith(KEY_PREFIX) and svc is not None \
            and svc.api_keys is not None:
        try:
            request[API_KEY_PRINCIPAL] = await svc.api_keys.authenticate(token)
        except Exception as exc:
            err = error_from_exception(exc)
            if err.code == INTERNAL:
                log.exception("checking an API key failed")
            request[API_KEY_PRINCIPAL] = err
    return await handler(request)


async def create_key(request: web.Request) -> web.Response:
    who = principal(request)
    req = await body(request, CreateKey)
    created = await api_keys(request).create(who, req.name, req.expires_in_days)
    return json_response(created, status=201)


async def list_keys(request: web.Request) -> web.Response:
    keys = await api_keys(request).list(principal(request))
    return json_response({"keys": keys})


async def revoke_key(request: web.Request) -> web.Response:
    await api_keys(request).revoke(principal(request), request.match_info["key_id"])
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    """Register the key routes."""
    app.router.add_post("/api/v1/keys", create_key)
    app.router.add_get("/api/v1/keys", list_keys)
    app.router.add_delete("/api/v1/keys/{key_id}", revoke_key)
