"""`GET /api/v1/tools`: the tools this node offers, for the room settings."""

from __future__ import annotations

from aiohttp import web

from handlers.common import json_response, principal, services


async def list_tools(request: web.Request) -> web.Response:
    principal(request)
    registry = services(request).tools
    tools = [tool.as_dict() for tool in registry.all()] if registry is not None else []
    return json_response({"tools": tools})


def setup(app: web.Application) -> None:
    """Register the tools route."""
    app.router.add_get("/api/v1/tools", list_tools)
