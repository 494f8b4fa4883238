"""Every REST route and the static web client."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from handlers import auth, chats, internal


def setup_routes(app: web.Application, web_dir: Path) -> None:
    """Register the REST routes, then the web client at `/`."""
    auth.setup(app)
    chats.setup(app)
    internal.setup(app)
    index = web_dir / "index.html"

    async def index_page(request: web.Request) -> web.StreamResponse:
        if not index.exists():
            raise web.HTTPNotFound(reason="web client not installed")
        return web.FileResponse(index)

    app.router.add_get("/", index_page)
    if web_dir.is_dir():
        app.router.add_static("/", web_dir, show_index=False, follow_symlinks=False)
