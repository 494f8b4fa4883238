"""`/internal`: health and Prometheus metrics for operators.

With `server.internal_token` set, metrics and the health checks' detail need it as a
bearer token; load balancers still get `{"status"}` (and 503 when down) without it.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from app.errors import UNAUTHORIZED, AppError
from handlers.common import SETTINGS, json_response, services


def _authorized(request: web.Request) -> bool:
    token = request.app[SETTINGS].server.internal_token
    if token is None:
        return True
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


async def health(request: web.Request) -> web.Response:
    report = await services(request).health.report()
    status = 503 if report["status"] == "down" else 200
    if not _authorized(request):
        return json_response({"status": report["status"]}, status=status)
    return json_response(report, status=status)


async def metrics(request: web.Request) -> web.Response:
    if not _authorized(request):
        raise AppError(
            UNAUTHORIZED, "send Authorization: Bearer <server.internal_token> for metrics"
        )
    return web.Response(
        body=services(request).metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


def setup(app: web.Application) -> None:
    """Register the internal routes."""
    app.router.add_get("/internal/health", health)
    app.router.add_get("/internal/metrics", metrics)
