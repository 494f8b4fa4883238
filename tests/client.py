"""Test helpers: a Parlour on a free port, users, and recording Socket.IO clients."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import socketio
from aiohttp import web

from app.assistant.source import ReplySource
from app.config import Settings
from app.keys import SERVICES
from app.llm.base import Provider
from app.main import create_app
from app.services import Services
from app.voice.speech_port import SpeechPort
from tests.servers import free_port

REALTIME = "/assistant/realtime"
_counter = itertools.count()


@dataclass
class User:
    user_id: str
    email: str
    name: str
    token: str
    refresh_token: str


class Parlour:
    """A real server on 127.0.0.1 and an HTTP session to call it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # unsafe=True: accept cookies from an IP host (127.0.0.1).
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._sockets: list[SocketClient] = []

    @property
    def services(self) -> Services:
        return self.runner.app[SERVICES]

    async def request(
        self, method: str, path: str, user: User | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """Call the REST API; (status, JSON body or None)."""
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {user.token}"
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data

    async def signup(self, name: str | None = None, password: str = "correct horse 1") -> User:
        """A new account."""
        n = next(_counter)
        name = name or f"user{n}"
        email = f"{name.lower()}.{n}@example.com"
        status, data = await self.request(
            "POST", "/api/v1/auth/signup", json={"email": email, "password": password, "name": name}
        )
        assert status == 201, data
        return User(data["user"]["user_id"], email, name, data["access_token"],
                    data["refresh_token"])

    async def socket(self, user: User | None, namespace: str = REALTIME,
                     token: str | None = None, **connect: Any) -> SocketClient:
        """A connected Socket.IO client that records every event."""
        client = SocketClient(namespace)
        await self.connect(client, user, token, **connect)
        return client

    async def connect(self, client: SocketClient, user: User | None,
                      token: str | None = None, **connect: Any) -> None:
        """Connect a SocketClient as `user` (or with an explicit token)."""
        namespace = client.namespace
        auth = {"token": token if token is not None else (user.token if user else "")}
        await client.sio.connect(self.url, namespaces=[namespace], auth=auth,
                                 transports=["websocket"], wait_timeout=5, **connect)
        self._sockets.append(client)

    async def close(self) -> None:
        for client in self._sockets:
            if client.sio.connected:
                await client.sio.disconnect()
        await self.http.close()
        await self.runner.cleanup()


async def start_parlour(
    settings: Settings,
    providers: Mapping[str, Provider] | None = None,
    reply_source: ReplySource | None = None,
    speech: SpeechPort | None = None,
) -> Parlour:
    """Start the app on a free port (with extra LLM providers, e.g. a scripted one)."""
    port = free_port()
    app = create_app(settings, providers=providers, reply_source=reply_source, speech=speech)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Parlour(runner, port)


class SocketClient:
    """python-socketio client that keeps every received event."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

        @self.sio.on("*", namespace=namespace)  # type: ignore[untyped-decorator]
        async def record(event: str, data: Any = None) -> None:
            self.events.append((event, data))
            self._changed.set()

        @self.sio.on("connect_error", namespace=namespace)  # type: ignore[untyped-decorator]
        async def refused(data: Any = None) -> None:
            self.events.append(("connect_error", data))

    async def call(self, event: str, payload: Any = None, timeout: float = 10) -> Any:
        """Emit with an ack and return the ack."""
        return await self.sio.call(event, payload, namespace=self.namespace, timeout=timeout)

    async def ok(self, event: str, payload: Any = None) -> Any:
        """Emit, assert the ack is ok, return its data."""
        ack = await self.call(event, payload)
        assert ack["ok"] is True, ack
        return ack["data"]

    async def emit(self, event: str, payload: Any = None) -> None:
        """Emit without asking for an ack."""
        await self.sio.emit(event, payload, namespace=self.namespace)

    def named(self, name: str) -> list[Any]:
        """Payloads of the received events called `name`."""
        return [data for event, data in self.events if event == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 5.0,
                   where: Any = None) -> list[Any]:
        """Wait until `count` events called `name` (matching `where`) arrived."""
        async def reached() -> list[Any]:
            while True:
                found = [d for d in self.named(name) if where is None or where(d)]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(reached(), timeout)

    async def disconnect(self) -> None:
        await self.sio.disconnect()


TEST_SECRET = "test-secret-0123456789abcdef-0123456789"


def bad_tokens(user: User) -> list[str]:
    """Tokens that must be refused: expired, forged, alg=none, tampered, refresh, garbage."""
    claims = jwt.decode(user.token, options={"verify_signature": False})
    return [
        jwt.encode({**claims, "exp": int(time.time()) - 5}, TEST_SECRET, algorithm="HS256"),
        jwt.encode(claims, "another-secret-0123456789-0123456789", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
        user.token[:-4] + ("AAAA" if not user.token.endswith("AAAA") else "BBBB"),
        user.refresh_token,
        "garbage",
        "",
    ]
