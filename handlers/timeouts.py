"""A deadline on request bodies: a client that stops sending cannot hold a handler.

Headers have theirs in aiohttp itself: a connection whose request head is not complete
within `server.header_timeout_seconds` (aiohttp's keep-alive timeout, which also runs
from the connection's start) is closed. A body is read at the client's pace, however
slow, but a handler waiting for body bytes that do not come for
`server.body_timeout_seconds` gets a 408 and the connection is closed. This covers every
route, Engine.IO's polling POSTs included (middlewares wrap them too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from app.errors import INVALID_PAYLOAD, AppError
from handlers.common import error_response

REQUEST_TIMEOUT = 408


class _BodyWatch:
    """Fails the body's reader when it waited `seconds` without receiving a byte."""

    def __init__(self, request: web.Request, seconds: float) -> None:
        self._content = request.content
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._seen = self._content.total_bytes
        self._since = self._loop.time()
        self._handle = self._loop.call_later(self._interval(), self._check)
        self.fired = False

    def _interval(self) -> float:
        return max(0.05, min(1.0, self._seconds / 4))

    def _check(self) -> None:
        content = self._content
        if content.is_eof() or content.exception() is not None:
            return
        now = self._loop.time()
        # Only while the handler waits for bytes (aiohttp's reader keeps its waiter
        # there): a handler busy elsewhere leaves the client paused by flow control.
        waiting = getattr(content, "_waiter", None) is not None
        if content.total_bytes != self._seen or not waiting:
            self._seen, self._since = content.total_bytes, now
        elif now - self._since >= self._seconds:
            self.fired = True
            content.set_exception(AppError(
                INVALID_PAYLOAD,
                f"request body: nothing received for {self._seconds:g} s",
                status=REQUEST_TIMEOUT,
            ))
            return
        self._handle = self._loop.call_later(self._interval(), self._check)

    def cancel(self) -> None:
        self._handle.cancel()


def body_timeout_middleware(seconds: float) -> Any:
    """408 (and a closed connection) for a body that stalls for `seconds`."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        watch = _BodyWatch(request, seconds)
        try:
            response = await handler(request)
        except AppError as exc:
            if not watch.fired or exc.status != REQUEST_TIMEOUT:
                raise
            response = error_response(exc)
        finally:
            watch.cancel()
        if watch.fired:
            # The rest of the body will never be read: this connection is done.
            response.force_close()
        return response

    return middleware
