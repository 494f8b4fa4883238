"""Security headers on every response: the web client, the API, Socket.IO's polling."""

from __future__ import annotations

from aiohttp import web

from app.keys import SETTINGS

# Only our own files run: no inline script, no eval, no other origin. Socket.IO's
# WebSocket is same-origin ('self' covers ws:/wss: to this host). Markdown images from
# other sites are not fetched (no tracking pixels in a room).
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# Swagger UI (/docs) sets inline styles; it still runs only our vendored scripts.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Set the headers just before a response starts (streams and polling too).

    Not on a WebSocket's 101: nothing renders it, and its headers stay in memory for the
    connection's life (10,000 idle sockets: ~1 KB each).
    """
    if response.status == 101:
        return
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    docs = request.path == request.app[SETTINGS].server.base_path + "/docs"
    response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)


def setup(app: web.Application) -> None:
    """Register the headers on every response of `app`."""
    app.on_response_prepare.append(add_security_headers)
