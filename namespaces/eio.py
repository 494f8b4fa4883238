"""Engine.IO's websocket loop made cheaper: fewer tasks, timers and writes per packet.

python-engineio 4's `AsyncSocket` pays, for every packet:
- received: a task and an `asyncio.wait_for` around the wait for the next frame (a
  task, a future and a timer), i.e. for every event a client sends;
- sent: a task per wait of the writer (`poll` waits with `asyncio.wait_for` too), and a
  transport write per packet even when several are ready at once (a message's ack and
  its `message_received` go to the sender in the same wake-up).

Here the reader awaits the frame itself, with one timer per socket re-armed only when
it fires; `poll` bounds its wait with `asyncio.timeout`; and the packets of one wake-up
leave in one transport write. The behaviour is python-engineio 4's own: a socket silent
for ping_interval + ping_timeout is closed, `poll` returns the first packet (None: the
socket is closing) and whatever else is queued.
"""

from __future__ import annotations

import asyncio
import struct
from importlib.metadata import version
from typing import Any

from engineio import async_socket, exceptions, packet

_TEXT, _BINARY = 0x81, 0x82  # FIN + opcode (RFC 6455 5.2)
# aiohttp 3's WebSocketWriter, whose attributes `_send_all` writes through.
_PLAIN_WRITER = version("aiohttp").startswith("3.")


async def _poll(self: Any) -> list[Any]:
    """`AsyncSocket.poll` without a task per wait (the polling transport's wait)."""
    queue = self.queue
    try:
        async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
            first = await queue.get()
    except (TimeoutError, asyncio.CancelledError):
        raise exceptions.QueueEmpty() from None
    return _with_queued(queue, first)


def _with_queued(queue: asyncio.Queue[Any], first: Any) -> list[Any]:
    """`first` and what else is queued, up to the None that ends the socket (kept)."""
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    while True:
        try:
            pkt = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)
            break
        packets.append(pkt)
    return packets


async def _websocket_handler(self: Any, ws: Any) -> None:
    """`AsyncSocket._websocket_handler` without a task per received packet.

    The stock reader wraps every wait for the next frame in a task of its own and an
    `asyncio.wait_for` (a task, a future and a timer per packet received). Here the
    reader awaits the frame itself; one timer per socket, re-armed only when it fires,
    ends a socket silent for ping_interval + ping_timeout, as the stock one does.
    The writer sends a wake-up's packets in one transport write (`_send_all`).
    """
    server = self.server

    async def websocket_wait() -> Any:
        data = await ws.wait()
        if data and len(data) > server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    if self.connected:  # an upgrade from polling: python-engineio's own steps
        self.upgrading = True
        try:
            pkt = await websocket_wait()
        except OSError:
            return
        decoded = packet.Packet(encoded_packet=pkt)
        if decoded.packet_type != packet.PING or decoded.data != "probe":
            server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return
        await ws.send(packet.Packet(packet.PONG, data="probe").encode())
        await self.queue.put(packet.Packet(packet.NOOP))  # end poll
        try:
            pkt = await websocket_wait()
        except OSError:
            self.upgrading = False
            return
        decoded = packet.Packet(encoded_packet=pkt)
        if decoded.packet_type != packet.UPGRADE:
            self.upgraded = False
            server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet, "
                               "received %s instead.", self.sid, pkt)
            self.upgrading = False
            return
        self.upgraded = True
        self.upgrading = False
    else:
        self.connected = True
        self.upgraded = True

    async def writer() -> None:
        # No timeout here: the reader always ends (silence, a frame after the socket
        # closed, the connection gone) and then queues the None that ends this loop.
        queue = self.queue
        while True:
            packets = _with_queued(queue, await queue.get())
            if not packets:  # the socket is closing
                break
            try:
                await _send_all(ws, packets)
            except Exception:
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    server.logger.info("%s: Upgrade to websocket successful", self.sid)

    loop = asyncio.get_running_loop()
    idle = server.ping_interval + server.ping_timeout
    last = loop.time()
    watchdog: asyncio.TimerHandle | None = None
    try:
        async with asyncio.timeout(None) as silence:

            def check() -> None:
                nonlocal watchdog
                due = last + idle
                if loop.time() >= due:
                    silence.reschedule(loop.time())  # silent too long: the wait ends
                else:
                    watchdog = loop.call_at(due, check)

            watchdog = loop.call_at(last + idle, check)
            while True:
                p = await websocket_wait()
                last = loop.time()
                if p is None:  # connection closed by client
                    break
                try:
                    await self.receive(packet.Packet(encoded_packet=p))
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    server.logger.info("Receive error -- socket is closed")
                    break
                except Exception:
                    server.logger.exception("Unknown receive error")
                if self.closed:  # closed by the server: a client still talking is let go
                    break
    except (asyncio.CancelledError, Exception):
        pass  # silence, a closed or broken connection, a frame too large: as the stock one
    finally:
        if watchdog is not None:
            watchdog.cancel()
    await self.queue.put(None)  # unlock the writer task so it can exit
    await writer_task
    await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


async def _send_all(ws: Any, packets: list[Any]) -> None:
    """Send packets as websocket frames: one transport write when aiohttp's is plain.

    Frames of an uncompressed server socket are a header and the payload (no mask);
    with permessage-deflate, or an aiohttp writer not shaped as known, each packet takes
    aiohttp's own path. aiohttp's flow control is kept: past its limit, wait to drain.
    """
    global _PLAIN_WRITER
    writer = getattr(getattr(ws, "_sock", None), "_writer", None)
    if len(packets) > 1 and _PLAIN_WRITER and writer is not None:
        try:
            transport, closing, compress = writer.transport, writer._closing, writer.compress
            writer._output_size, writer._limit, writer.protocol._paused  # noqa: B018
        except AttributeError:  # another aiohttp: its own path from now on
            _PLAIN_WRITER = False
        else:
            if not compress:
                await _write_frames(writer, transport, closing, packets)
                return
    for pkt in packets:
        await ws.send(pkt.encode())


async def _write_frames(writer: Any, transport: Any, closing: bool, packets: list[Any]) -> None:
    parts: list[bytes] = []
    for pkt in packets:
        data = pkt.encode()
        first = _TEXT
        if isinstance(data, str):
            data = data.encode()
        else:
            first = _BINARY
        n = len(data)
        if n < 126:
            parts.append(bytes((first, n)))
        elif n < 65536:
            parts.append(struct.pack("!BBH", first, 126, n))
        else:
            parts.append(struct.pack("!BBQ", first, 127, n))
        parts.append(data)
    if closing or transport.is_closing():
        raise ConnectionResetError("Cannot write to closing transport")
    chunk = b"".join(parts)
    transport.write(chunk)
    writer._output_size += len(chunk)
    if writer._output_size > writer._limit:
        writer._output_size = 0
        if writer.protocol._paused:
            await writer.protocol._drain_helper()


def install() -> bool:
    """Use the cheaper loop (python-engineio 4.x only, whose loop it mirrors)."""
    if not version("python-engineio").startswith("4."):
        return False
    async_socket.AsyncSocket.poll = _poll
    async_socket.AsyncSocket._websocket_handler = _websocket_handler
    return True

