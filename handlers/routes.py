"""Every REST route and the static web client."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from app.errors import not_found
from app.keys import WEB_ROOT
from handlers import (
    ai,
    api_keys,
    audio,
    auth,
    chats,
    documents,
    files,
    gateway,
    internal,
    oidc,
    openapi,
    prompt_compiler,
    tools,
    ws,
)
from handlers.methods import method_not_allowed


def _static_file(web_dir: Path, name: str) -> Path | None:
    """The file under web_dir named by a URL path, never outside it."""
    root = web_dir.resolve()
    candidate = (root / (name or "index.html")).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def setup_routes(app: web.Application, web_dir: Path) -> None:
    """Register the REST routes, then the web client at `/`."""
    app[WEB_ROOT] = web_dir
    auth.setup(app)
    # Before anything else under /api/v1/auth/{provider}/...
    oidc.setup(app)
    chats.setup(app)
    internal.setup(app)
    ai.setup(app)
    gateway.setup(app)
    api_keys.setup(app)
    audio.setup(app)
    prompt_compiler.setup(app)
    ws.setup(app)
    files.setup(app)
    documents.setup(app)
    tools.setup(app)
    openapi.setup(app)

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["path"]
        if name.startswith(("api/", "internal/")):
            return await method_not_allowed(request)  # 405 + Allow, or 404
        if request.method not in ("GET", "HEAD"):
            return await method_not_allowed(request, {"GET", "HEAD"})
        path = await asyncio.to_thread(_static_file, web_dir, name)
        if path is None:
            raise not_found("file")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    # Every method: a wrong one on a known route answers 405 with Allow (handlers/methods.py).
    app.router.add_route("*", "/{path:.*}", static)
