"""Loopback stand-ins for the third-party APIs the tools call: Google (OAuth token endpoint
and Calendar v3) and Notion. Each checks credentials the way the real service does."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import free_port

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google checks the assertion's audience against its own endpoint, whatever URL served it.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run `app` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


@dataclass
class FakeGoogle:
    """Google's token endpoint and the Calendar v3 events API, in one aiohttp app.

    The token endpoint verifies the service account's signed JWT assertion (RS256 with
    the key it generated, iss, aud = Google's token endpoint, scope, iat/exp) and issues an opaque
    token; the Calendar API accepts only an issued, unexpired token.
    """

    email: str = "parlour-bot@test-project.iam.gserviceaccount.com"
    events: list[dict[str, Any]] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    calendar_requests: list[web.Request] = field(default_factory=list)
    fail_status: int | None = None  # answer every calendar call with this status
    delay: float = 0.0  # seconds before every calendar answer
    url: str = ""

    def __post_init__(self) -> None:
        self._key = _service_account_key()

    def key_file(self, directory: Path) -> Path:
        """A service-account key file whose token_uri points here."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = directory / "service-account.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": "test-project",
            "private_key_id": "k1", "private_key": pem, "client_email": self.email,
            "client_id": "1234567890", "token_uri": f"{self.url}/token",
        }))
        return path

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/calendar/v3/calendars/{calendar}/events", self._list)
        app.router.add_post("/calendar/v3/calendars/{calendar}/events", self._create)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")), self._key.public_key(), algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE, issuer=self.email,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant",
                                      "error_description": str(exc)}, status=400)
        if CALENDAR_SCOPE not in str(claims["scope"]).split():
            return web.json_response({"error": "invalid_scope"}, status=400)
        if claims["exp"] - claims["iat"] > 3600:
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.token_requests.append(claims)
        token = "ya29." + secrets.token_urlsafe(16)
        self.issued[token] = time.time() + 3600
        return web.json_response({"access_token": token, "expires_in": 3600,
                                  "token_type": "Bearer"})

    async def _authorized(self, request: web.Request) -> web.Response | None:
        self.calendar_requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        if not header.startswith("Bearer ") or self.issued.get(token, 0) < time.time():
            return _error(401, "Request had invalid authentication credentials.")
        if self.fail_status is not None:
            return _error(self.fail_status, "The service is currently unavailable.")
        return None

    async def _list(self, request: web.Request) -> web.Response:
        if (refused := await self._authorized(request)) is not None:
            return refused
        start = request.query.get("timeMin")
        end = request.query.get("timeMax")
        query = request.query.get("q", "").lower()
        found = [
            e for e in self.events
            if (start is None or _at(e["end"]) > _parse(start))
            and (end is None or _at(e["start"]) < _parse(end))
            and (not query or query in e["summary"].lower())
        ]
        found.sort(key=lambda e: _at(e["start"]))
        found = found[: int(request.query.get("maxResults", "250"))]
        return web.json_response({"summary": request.match_info["calendar"],
                                  "timeZone": "UTC", "items": found})

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := await self._authorized(request)) is not None:
            return refused
        body = await request.json()
        if not body.get("summary") or "start" not in body or "end" not in body:
            return _error(400, "Missing required field.")
        event = {**body, "id": secrets.token_hex(8), "status": "confirmed",
                 "htmlLink": "https://calendar.example/event"}
        self.events.append(event)
        return web.json_response(event)


@functools.cache
def _service_account_key() -> rsa.RSAPrivateKey:
    """One RSA key per test run (generating one takes a while)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _at(when: dict[str, str]) -> datetime:
    return _parse(when.get("dateTime") or f"{when['date']}T00:00:00+00:00")


@dataclass
class FakeNotion:
    """Notion's /v1/search and /v1/pages, with its bearer-token and version checks."""

    token: str = "secret_test_token"
    pages: list[dict[str, Any]] = field(default_factory=list)
    fail_status: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/search", self._search)
        app.router.add_post("/v1/pages", self._create)
        return app

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"object": "error", "status": 401,
                                      "code": "unauthorized",
                                      "message": "API token is invalid."}, status=401)
        if not request.headers.get("Notion-Version"):
            return web.json_response({"object": "error", "status": 400,
                                      "code": "missing_version",
                                      "message": "Notion-Version header is required."},
                                     status=400)
        if self.fail_status is not None:
            return web.json_response({"object": "error", "status": self.fail_status,
                                      "code": "service_unavailable",
                                      "message": "Notion is unavailable."},
                                     status=self.fail_status)
        return None

    async def _search(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        query = str(body.get("query", "")).lower()
        found = [p for p in self.pages if query in _page_title(p).lower()]
        return web.json_response({"object": "list", "results": found, "has_more": False,
                                  "next_cursor": None})

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        if "page_id" not in (body.get("parent") or {}):
            return web.json_response({"object": "error", "status": 400,
                                      "code": "validation_error",
                                      "message": "body.parent.page_id should be defined"},
                                     status=400)
        page_id = secrets.token_hex(16)
        title = body["properties"]["title"]["title"]
        page = {
            "object": "page", "id": page_id, "url": f"https://www.notion.so/{page_id}",
            "last_edited_time": "2025-01-01T00:00:00.000Z", "parent": body["parent"],
            "properties": {"title": {"id": "title", "type": "title", "title": [
                {**t, "plain_text": t["text"]["content"]} for t in title
            ]}},
            "children": body.get("children", []),
        }
        self.pages.append(page)
        return web.json_response(page)


def _page_title(page: dict[str, Any]) -> str:
    parts = page["properties"]["title"]["title"]
    return "".join(p.get("plain_text", "") for p in parts)
