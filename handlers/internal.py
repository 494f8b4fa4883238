"""`/internal`: health and Prometheus metrics for operators."""

from __future__ import annotations

from aiohttp import web

from handlers.common import json_response, services


async def health(request: web.Request) -> web.Response:
    report = await services(request).health.report()
    return json_response(report, status=503 if report["status"] == "down" else 200)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=services(request).metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


def setup(app: web.Application) -> None:
    """Register the internal routes."""
    app.router.add_get("/internal/health", health)
    app.router.add_get("/internal/metrics", metrics)
