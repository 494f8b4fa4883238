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
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from app.errors import INVALID_PAYLOAD, AppError
from handlers.common import error_response

REQUEST_TIMEOUT = 408


class BodyTimeout(AppError):
    """The body stalled: 408 (Engine.IO answers its polling POST itself, and closes)."""


class _QuietBodyTimeouts(logging.Filter):
    """Engine.IO logs any failed POST read with its traceback: not a slow client's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], BodyTimeout))


class _BodyWatch:
    """Fails the body's reader when it waited `seconds` without receiving a byte."""

    def __init__(self, request: web.Request, seconds: float) -> None:
        self._content = request.content
        self._transport = request.transport
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
            content.set_exception(BodyTimeout(
                INVALID_PAYLOAD,
                f"request body: nothing received for {self._seconds:g} s",
                status=REQUEST_TIMEOUT,
            ))
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()  # late bytes are not read any more
            return
        self._handle = self._loop.call_later(self._interval(), self._check)

    def cancel(self) -> None:
        self._handle.cancel()


def body_timeout_middleware(seconds: float) -> Any:
    """408 (and a closed connection) for a body that stalls for `seconds`."""
    engineio_log = logging.getLogger("engineio.server")
    if not any(isinstance(f, _QuietBodyTimeouts) for f in engineio_log.filters):
        engineio_log.addFilter(_QuietBodyTimeouts())

    async def watched(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        watch = _BodyWatch(request, seconds)
        try:
            response = await handler(request)
        except BodyTimeout as exc:
            response = error_response(exc)
        finally:
            watch.cancel()
        if watch.fired:
            # The rest of the body will never be read: this connection is done, and
            # aiohttp must not wait for the rest of the body (it would read the error).
            response.force_close()
            request.content.feed_eof()
        return response

    @web.middleware
    def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Awaitable[web.StreamResponse]:
        # Not a coroutine when there is no body: no frame of ours lives as long as the
        # request (a WebSocket's: the connection's life).
        if not request.body_exists or request.content.is_eof():
            return handler(request)
        return watched(request, handler)

    return middleware
