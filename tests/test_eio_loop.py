"""Engine.IO's websocket loop as namespaces/eio.py runs it, over real aiohttp sockets.

The reader waits for frames without a task each and ends silent sockets with one timer;
the writer sends a wake-up's packets in one transport write. What a client sees must be
what python-engineio's own loop gives it: every packet, in order, intact, and a silent
socket closed after ping_interval + ping_timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio
from aiohttp import web
from engineio import packet as eio_packet

from namespaces import eio
from namespaces.server import ParlourServer


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class _WS:
    """The engineio aiohttp driver's wrapper, as `_send_all` is given it."""

    def __init__(self, sock: web.WebSocketResponse) -> None:
        self._sock = sock

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)


async def test_packets_of_one_wake_up_arrive_whole_and_in_order() -> None:
    """Short, 16-bit and 64-bit length frames, text and binary (sent as is), in one write."""
    texts = ["hi", "é" * 100, "x" * 300, "y" * 70_000, "z"]
    blob = bytes(range(256)) * 600  # 153,600 bytes: a 64-bit length
    packets = [eio_packet.Packet(eio_packet.MESSAGE, data=t) for t in texts]
    packets.insert(2, eio_packet.Packet(eio_packet.MESSAGE, data=blob))

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        await eio._send_all(_WS(ws), packets)
        await eio._send_all(_WS(ws), packets[:1])  # one packet: aiohttp's own path
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    async with serving(app) as host, aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://{host}/ws") as ws:
        got: list[Any] = [(await ws.receive()).data for _ in range(len(packets) + 1)]
        await ws.close()
    assert got == ["4hi", "4" + "é" * 100, blob, "4" + "x" * 300,
                   "4" + "y" * 70_000, "4z", "4hi"]


async def test_a_compressed_socket_gets_every_packet_too() -> None:
    """permessage-deflate (browsers ask for it): each packet takes aiohttp's own path."""
    packets = [eio_packet.Packet(eio_packet.MESSAGE, data=f"m{i}" * 50) for i in range(3)]

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert ws.compress
        await eio._send_all(_WS(ws), packets)
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    async with serving(app) as host, aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://{host}/ws", compress=15) as ws:
        got = [(await ws.receive()).data for _ in packets]
        await ws.close()
    assert got == ["4" + f"m{i}" * 50 for i in range(3)]


@dataclass
class SioApp:
    app: web.Application
    sio: ParlourServer
    sids: list[str] = field(default_factory=list)  # connected, in order
    gone: list[str] = field(default_factory=list)  # disconnected, in order


def _sio_app(ping: float) -> SioApp:
    sio = ParlourServer(async_mode="aiohttp", ping_interval=ping, ping_timeout=ping,
                        logger=False, engineio_logger=False)
    served = SioApp(web.Application(), sio)
    sio.attach(served.app)

    @sio.event  # type: ignore[misc]
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        served.sids.append(sid)

    @sio.event  # type: ignore[misc]
    async def echo(sid: str, data: Any) -> Any:
        await sio.emit("seen", data, to=sid)  # the event and the ack leave together
        return {"echo": data}

    @sio.event  # type: ignore[misc]
    async def disconnect(sid: str, reason: Any = None) -> None:
        served.gone.append(sid)

    return served


async def test_an_event_and_its_ack_reach_a_socketio_client() -> None:
    async with serving(_sio_app(5).app) as host:
        client = socketio.AsyncClient()
        seen: asyncio.Queue[Any] = asyncio.Queue()
        client.on("seen", seen.put_nowait)
        await client.connect(f"http://{host}", transports=["websocket"])
        try:
            for i in range(20):
                assert await client.call("echo", {"n": i}, timeout=5) == {"echo": {"n": i}}
                assert await asyncio.wait_for(seen.get(), 5) == {"n": i}
        finally:
            await client.disconnect()


async def test_a_silent_socket_is_closed_after_ping_interval_and_timeout() -> None:
    """A client that stops answering (no pong, no frame) is let go, and its sid freed.

    python-engineio's ping check and the reader's timer both watch for this; whichever
    comes first, the new loop must wind the socket down (writer, close, disconnect).
    """
    served = _sio_app(0.4)
    async with serving(served.app) as host, aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://{host}/socket.io/?EIO=4&transport=websocket") \
                as ws:
            assert (await ws.receive()).data.startswith("0{")  # the open packet
            await ws.send_str("40")
            assert (await ws.receive()).data.startswith("40")
            started = time.monotonic()
            while True:  # read (pings included) without ever answering
                msg = await asyncio.wait_for(ws.receive(), 5)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING):
                    break
            waited = time.monotonic() - started
        for _ in range(50):
            if served.gone:
                break
            await asyncio.sleep(0.05)
    assert len(served.gone) == 1
    assert 0.4 <= waited < 3.0
    assert not served.sio.eio.sockets


async def test_a_socket_the_server_closed_is_let_go_while_its_client_keeps_talking() -> None:
    """A client that ignores the server's CLOSE and keeps sending is cut off at once,
    not kept until ping_interval + ping_timeout of write silence (here 10 s)."""
    served = _sio_app(5)
    async with serving(served.app) as host, aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://{host}/socket.io/?EIO=4&transport=websocket") as ws:
        assert (await ws.receive()).data.startswith("0{")
        await ws.send_str("40")
        assert (await ws.receive()).data.startswith("40")
        [eio_sid] = served.sio.eio.sockets
        await served.sio.eio.disconnect(eio_sid)  # sends CLOSE, waits for it to be taken
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 4 and not closed:
            with contextlib.suppress(ConnectionResetError):
                await ws.send_str("3")  # a pong nobody asked for
            try:
                msg = await asyncio.wait_for(ws.receive(), 0.1)
            except TimeoutError:
                continue
            closed = msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.CLOSING)
        waited = time.monotonic() - started
    assert closed, "the server kept a socket it had closed"
    assert waited < 2.0
    assert served.gone == served.sids
