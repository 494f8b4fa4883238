"""A raw Engine.IO 4 / Socket.IO 5 client over one aiohttp websocket.

It speaks the frames directly (`0{...}` open, `40/ns,{auth}` connect, `42/ns,id[...]`
events, `43/ns,id[...]` acks, `2`/`3` ping/pong) so the load generator costs a fraction
of what a python-socketio client costs: the server, not the clients, is measured.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import orjson

EventHook = Callable[[str, str], None]


class EioError(Exception):
    """The server refused the connection or closed it."""


class EioClient:
    """One socket in one namespace; `call` waits for the ack, events are counted."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, namespace: str = "/",
                 auth: dict[str, Any] | None = None) -> None:
        self._session = session
        self._url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.namespace = namespace
        # "40" + "/ns," ; the default namespace has neither the name nor the comma.
        self._prefix = "" if namespace == "/" else f"{namespace},"
        self._auth = auth
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._connected: asyncio.Future[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.counts: Counter[str] = Counter()
        self.hook: EventHook | None = None  # (event name, raw frame) for every event
        self._waiters: list[tuple[str, asyncio.Future[Any]]] = []
        self.pings = 0  # Engine.IO pings answered

    async def connect(self) -> None:
        self._ws = await self._session.ws_connect(self._url, max_msg_size=0, autoping=True)
        opened = await self._ws.receive_str(timeout=10)
        if not opened.startswith("0"):
            raise EioError(f"no Engine.IO open packet: {opened[:80]!r}")
        self._connected = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())
        auth = orjson.dumps(self._auth).decode() if self._auth is not None else ""
        await self._ws.send_str(f"40{self._prefix}{auth}")
        await asyncio.wait_for(self._connected, 10)

    async def emit(self, event: str, data: Any) -> None:
        """An event without an ack."""
        assert self._ws is not None
        await self._ws.send_str(f"42{self._prefix}" + orjson.dumps([event, data]).decode())

    async def call(self, event: str, data: Any, wait: float = 30) -> Any:
        """Emit with an ack id; the ack's first argument."""
        assert self._ws is not None
        ack_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        await self._ws.send_str(
            f"42{self._prefix}{ack_id}" + orjson.dumps([event, data]).decode()
        )
        try:
            return await asyncio.wait_for(fut, wait)
        finally:
            self._acks.pop(ack_id, None)

    async def next_event(self, name: str, wait: float = 30) -> Any:
        """The data of the next event called `name` (parsed)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((name, fut))
        return await asyncio.wait_for(fut, wait)

    @property
    def closed(self) -> bool:
        """Whether the websocket is closed (by either side)."""
        return self._ws is None or self._ws.closed

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        assert self._ws is not None
        ws = self._ws
        skip = 2 + len(self._prefix)
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame: str = msg.data
                kind = frame[0]
                if kind == "2":  # Engine.IO ping
                    self.pings += 1
                    await ws.send_str("3")
                    continue
                if kind != "4":
                    continue
                sio = frame[1]
                body = frame[skip:]
                if sio == "2":
                    # 42/ns,["name",...]: the name without parsing the payload.
                    name = body[2:body.index('"', 2)]
                    self.counts[name] += 1
                    if self.hook is not None:
                        self.hook(name, body)
                    if self._waiters:
                        self._wake(name, body)
                elif sio == "3":
                    bracket = body.index("[")
                    fut = self._acks.get(int(body[:bracket]))
                    if fut is not None and not fut.done():
                        args = orjson.loads(body[bracket:])
                        fut.set_result(args[0] if args else None)
                elif sio == "0" and self._connected and not self._connected.done():
                    self._connected.set_result(None)
                elif sio == "4" and self._connected and not self._connected.done():
                    self._connected.set_exception(EioError(f"connect refused: {body[:200]}"))
        finally:
            error = EioError("connection closed")
            for fut in self._acks.values():
                if not fut.done():
                    fut.set_exception(error)
            for _, waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(error)

    def _wake(self, name: str, body: str) -> None:
        data: Any = None
        parsed = False
        for entry in list(self._waiters):
            wanted, fut = entry
            if wanted != name:
                continue
            if not parsed:
                args = orjson.loads(body)
                data = args[1] if len(args) > 1 else None
                parsed = True
            self._waiters.remove(entry)
            if not fut.done():
                fut.set_result(data)


def run_json_main(main: Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    """A load-side process's entry: its JSON spec in argv[1], one JSON result line out."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(main(orjson.loads(sys.argv[1])))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
