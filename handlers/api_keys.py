"""Personal API keys: `/api/v1/keys` (keys authenticate through app.auth.Authenticator)."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import Field

from app.api_keys import ApiKeyService
from app.errors import UNAVAILABLE, AppError
from app.schemas import Payload
from handlers.common import body, json_response, principal, services

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
