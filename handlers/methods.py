"""405 with `Allow` for a known route called with the wrong method; 404 for unknown routes.

The web client's catch-all route matches every path, so aiohttp never answers 405 by
itself: the catch-all asks the other routes which methods they accept.
"""

from __future__ import annotations

from aiohttp import web

from app.errors import AppError, invalid, not_found
from handlers.common import error_response


async def allowed_methods(request: web.Request) -> set[str]:
    """Methods the app's routes (except the catch-all that is answering) accept here."""
    here = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is here:
            continue
        _, methods = await resource.resolve(request)
        allowed |= methods
    return allowed


async def method_not_allowed(
    request: web.Request, fallback: set[str] | None = None
) -> web.Response:
    """405 naming the methods that work, or 404 `not_found` when no route has this path.

    `fallback`: methods the catch-all itself serves on this path (the web client's GET).
    """
    allowed = await allowed_methods(request) or (fallback or set())
    if not allowed:
        raise not_found("route")
    methods = ", ".join(sorted(allowed))
    err: AppError = invalid(f"{request.method} is not allowed on {request.path}; use {methods}")
    err.status = 405
    response = error_response(err)
    response.headers["Allow"] = methods
    return response
