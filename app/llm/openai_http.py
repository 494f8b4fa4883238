"""The HTTP side of OpenAI-compatible streaming: one aiohttp session, SSE chunks as dicts.

The openai SDK cost ~2 ms from the call to the first chunk against a zero-latency server
(httpx, pydantic chunk models, its SSE decoder); this is a POST and a line parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
import urllib.request
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import certifi
import orjson
from aiohttp.http_exceptions import HttpProcessingError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
POOL_SIZE = 256  # connections per provider; more concurrent streams wait for one
KEEPALIVE_SECONDS = 30.0
MAX_SSE_LINE = 1 << 20  # one `data:` line; longer is a runaway server
MAX_ERROR_BODY = 64 * 1024
DRAIN_SECONDS = 1.0  # what may follow [DONE] before the body ends (else the socket closes)
RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is not waited for
RETRY_DELAY = 0.5


class UpstreamStatusError(Exception):
    """The server answered with an HTTP error status; `body` is its `error` object if any."""

    def __init__(self, status: int, message: str, body: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


class UpstreamError(Exception):
    """No usable answer: connection failure, timeout, broken or malformed stream."""


def _ssl_context(base_url: str) -> ssl.SSLContext | bool:
    # The CA bundle the SDK (httpx) used, so the same servers are trusted.
    if base_url.startswith("https:"):
        return ssl.create_default_context(cafile=certifi.where())
    return True


def _env_proxy(base_url: str) -> str | None:
    """HTTP(S)_PROXY / NO_PROXY, as httpx (the SDK) honoured them; read once, not per request."""
    parts = urlsplit(base_url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


def _error_message(status: int, raw: bytes) -> tuple[str, object]:
    """The SDK's wording: "Error code: 400 - <message>", and the `error` object."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        return f"Error code: {status}", text
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        return f"Error code: {status} - {message}", error
    return f"Error code: {status}", error


def _stream_error(data: dict[str, Any]) -> UpstreamError:
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return UpstreamError(message)


def _retry_delay(response: aiohttp.ClientResponse) -> float | None:
    """Seconds to wait before retrying this status, or None when it is final (as the SDK)."""
    should = response.headers.get("x-should-retry")
    if should == "false":
        return None
    if should != "true" and response.status not in RETRY_STATUSES and response.status < 500:
        return None
    try:
        after = float(response.headers.get("retry-after", ""))
    except ValueError:
        after = 0.0
    if 0 < after <= MAX_RETRY_AFTER:
        return after
    return RETRY_DELAY * (1 - 0.25 * random.random())  # jitter


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit:
        part = await response.content.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


class OpenAIStreamClient:
    """POSTs to an OpenAI-compatible API and reads its server-sent events.

    The session is made on first use (on the running loop) and kept: one bounded,
    keep-alive pool per provider. `timeout_seconds` bounds the connect and each read.
    """

    def __init__(
        self, base_url: str | None, api_key: str, *, timeout_seconds: float, max_retries: int
    ) -> None:
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
                         ).rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._max_retries = max_retries
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_seconds, sock_connect=timeout_seconds,
            sock_read=timeout_seconds,
        )
        self._proxy = _env_proxy(self.base_url)
        # Loaded here (at start-up) rather than on the event loop at the first request.
        self._ssl = _ssl_context(self.base_url)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_SECONDS,
                ssl=self._ssl,
            )
            # StreamReader's line limit is twice read_bufsize.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers,
                read_bufsize=MAX_SSE_LINE // 2,
            )
        return self._session

    async def open(self, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST `body` as JSON; the response once its status is 2xx (the caller releases it).

        A connection failure before any answer, or a retryable status, is retried up to
        `max_retries` times.
        """
        payload = orjson.dumps(body)
        session = self._get_session()
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = await session.post(url, data=payload, proxy=self._proxy)
            except aiohttp.SocketTimeoutError as exc:
                raise UpstreamError(f"no answer within {self.timeout_seconds:g} s") from exc
            except (aiohttp.ClientSSLError, aiohttp.InvalidURL) as exc:
                raise UpstreamError(f"Connection error: {exc}") from exc
            except aiohttp.ClientConnectionError as exc:
                if attempt < self._max_retries:
                    attempt += 1
                    continue
                raise UpstreamError(f"Connection error: {exc or type(exc).__name__}") from exc
            except aiohttp.ClientError as exc:
                raise UpstreamError(f"bad answer: {exc or type(exc).__name__}") from exc
            except TimeoutError as exc:
                raise UpstreamError(f"no answer within {self.timeout_seconds:g} s") from exc
            if response.status < 400:
                return response
            delay = _retry_delay(response) if attempt < self._max_retries else None
            try:
                raw = await _read_bounded(response, MAX_ERROR_BODY)
            except (aiohttp.ClientError, TimeoutError):
                raw = b""
            finally:
                response.release()
            if delay is None:
                message, error = _error_message(response.status, raw)
                raise UpstreamStatusError(response.status, message, error)
            attempt += 1
            await asyncio.sleep(delay)

    async def events(
        self, response: aiohttp.ClientResponse
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each JSON object of the `data:` lines until `[DONE]` or the end of the body.

        Comments, blank, `event:`, `id:` and `retry:` lines are skipped; an object with
        an `error`, or a llama.cpp `error:` line, raises UpstreamError.
        """
        content = response.content
        try:
            while True:
                line = await content.readline()
                if not line:
                    return
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                    if data.startswith(b"[DONE]"):
                        return
                    parsed = orjson.loads(data)
                    if isinstance(parsed, dict):
                        if parsed.get("error"):
                            raise _stream_error(parsed)
                        yield parsed
                elif line.startswith(b"error:"):
                    # llama.cpp's `error: {...}`, the error object bare or wrapped.
                    parsed = orjson.loads(line[6:].strip())
                    if isinstance(parsed, dict) and "error" not in parsed:
                        parsed = {"error": parsed}
                    raise _stream_error(parsed if isinstance(parsed, dict) else {})
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"the server sent malformed JSON in its stream: {exc}") from exc
        except (aiohttp.SocketTimeoutError, TimeoutError) as exc:
            raise UpstreamError(
                f"the stream stalled: no data for {self.timeout_seconds:g} s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamError(f"the connection broke mid-stream: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the connection broke mid-stream: {exc or type(exc).__name__}"
                                ) from exc
        except (ValueError, HttpProcessingError) as exc:  # a line over MAX_SSE_LINE
            raise UpstreamError(f"a server-sent event line is too long: {exc}") from exc

    @staticmethod
    async def drain(response: aiohttp.ClientResponse) -> None:
        """Read what follows [DONE] so the connection can be reused; give up quickly."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while await response.content.readany():
                    pass

    async def close(self) -> None:
        """Close the connection pool (a later request opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
