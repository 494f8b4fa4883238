"""The python-socketio server: orjson, ack tracking, and the Transport the services use."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import orjson
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from app.events import user_channel
from namespaces import eio
from storage.control import ControlBus

REALTIME = "/assistant/realtime"
DEFAULT = "/"
NAMESPACES = (REALTIME, DEFAULT)

# Whether the event being handled asked for an ack (set per event task).
ack_requested: contextvars.ContextVar[bool] = contextvars.ContextVar("ack_requested", default=True)


class OrjsonModule:
    """The json interface python-socketio expects, backed by orjson."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return orjson.loads(data)


class ParlourPacket(socketio.packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, encoded with one orjson call (every packet sent).

    The stock packet walks the data for bytes (a list built and reduced at every level)
    before it is encoded. Here the data is serialized at once: orjson refuses bytes, so
    data it writes has none and that encoding is the one sent. Only data it refuses
    (binary attachments) takes the stock path.
    """

    def __init__(self, packet_type: int = sio_packet.EVENT, data: Any = None,
                 namespace: str | None = None, id: int | None = None,
                 binary: bool | None = None, encoded_packet: Any = None) -> None:
        self._encoded: str | None = None
        if encoded_packet is None and binary is None and data is not None and \
                packet_type in (sio_packet.EVENT, sio_packet.ACK):
            try:
                self._encoded = orjson.dumps(data).decode()
                binary = False
            except TypeError:
                pass  # bytes inside: the stock check finds them
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def encode(self) -> Any:
        if self._encoded is None or self.packet_type not in (sio_packet.EVENT, sio_packet.ACK):
            return super().encode()
        head = str(self.packet_type)
        if self.namespace is not None and self.namespace != "/":
            head += self.namespace + ","
        if self.id is not None:
            head += str(self.id)
        return head + self._encoded

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        """The stock check without its lists and lambdas (a stack, stops at the first bytes)."""
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, bytes | bytearray):
                return True
        return False


class ParlourServer(socketio.AsyncServer):  # type: ignore[misc]
    """AsyncServer that lets handlers know whether the client asked for an ack.

    python-socketio drops a handler's return value when no ack id was sent; our
    namespaces then emit an `error` event instead, so no failure goes unanswered.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        eio.install()  # sockets' writers wait without a task each (namespaces/eio.py)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        ack_requested.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


class SocketTransport:
    """The services' Transport, on top of the Socket.IO server and its client manager."""

    def __init__(self, sio: socketio.AsyncServer, control: ControlBus) -> None:
        self._sio = sio
        self._control = control
        control.subscribe(self._on_command)

    async def emit(
        self,
        event: str,
        data: dict[str, Any],
        *,
        to: str,
        skip_sid: str | None = None,
        all_namespaces: bool = False,
    ) -> None:
        namespaces = NAMESPACES if all_namespaces else (REALTIME,)
        for namespace in namespaces:
            await self._sio.emit(event, data, to=to, skip_sid=skip_sid, namespace=namespace)

    async def enter_room(self, sid: str, channel: str) -> None:
        await self._sio.enter_room(sid, channel, namespace=REALTIME)

    async def leave_room(self, sid: str, channel: str) -> None:
        await self._sio.leave_room(sid, channel, namespace=REALTIME)

    async def leave_user_sockets(self, user_id: str, channel: str) -> None:
        # The manager only sees this node's sockets: every node applies the command.
        await self._control.publish({"type": "leave", "user_id": user_id, "channel": channel})

    async def _on_command(self, command: dict[str, Any]) -> None:
        if command.get("type") != "leave":
            return
        manager = self._sio.manager
        user_room = user_channel(str(command["user_id"]))
        for sid, _ in list(manager.get_participants(REALTIME, user_room)):
            await self._sio.leave_room(sid, str(command["channel"]), namespace=REALTIME)


def deliver_local(
    manager: Any, event: str, data: Any, namespace: str, room: Any, skip_sid: Any
) -> bool:
    """Send an event to this node's sockets in `room`: encoded once, queued on each.

    python-socketio's own room emit starts a task per recipient and waits for all of
    them; queueing the shared frame on each socket is what those tasks end up doing.
    False (nothing sent) for binary data, which the stock path must split.
    """
    if namespace not in manager.rooms:
        return True
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    encoded = manager.server.packet_class(
        sio_packet.EVENT, namespace=namespace, data=[event, *args]
    ).encode()
    if isinstance(encoded, list):
        return False
    frame = eio_packet.Packet(eio_packet.MESSAGE, encoded)  # it caches its encoding
    skip = skip_sid if isinstance(skip_sid, list) else (skip_sid,)
    sockets = manager.server.eio.sockets
    for sid, eio_sid in manager.get_participants(namespace, room):
        if sid in skip:
            continue
        sock = sockets.get(eio_sid)
        if sock is not None and not sock.closed:
            sock.queue.put_nowait(frame)  # unbounded; the connection sweep drops laggards
    return True


class ParlourManager(socketio.AsyncManager):  # type: ignore[misc]
    """The single-node manager, with encode-once room emits (deliver_local)."""

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None,
                   **kwargs: Any) -> None:
        if callback is None and deliver_local(self, event, data, namespace, to or room,
                                              skip_sid):
            return
        await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                           callback=callback, to=to, **kwargs)


class PubSubJson:
    """The Redis manager's wire format: orjson bytes with `method` and `host_id` first.

    Still the JSON python-socketio publishes (any node can read it), but with those two
    keys in front a node recognises its own publications, which Redis hands back to it
    like to every subscriber, by their first bytes, without parsing them.
    """

    @staticmethod
    def dumps(obj: dict[str, Any], **_: Any) -> bytes:
        return orjson.dumps({"method": obj.get("method"), "host_id": obj.get("host_id"), **obj})

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return orjson.loads(data)


# What a node ignores when it hears it from itself (python-socketio's listener does the
# same after parsing); a "callback" names the host it is *for* and is never skipped.
_OWN_METHODS = ("emit", "disconnect", "enter_room", "leave_room", "close_room")


class ParlourRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager: local sockets at once, Redis for the other nodes.

    An emit without a callback or binary data is encoded once and queued on this node's
    sockets (deliver_local), then published once for the other nodes, which deliver it to
    theirs the same way; a node drops its own publication when Redis hands it back, by
    its prefix (PubSubJson). Callbacks and binary attachments take python-socketio's own
    path (which also delivers locally first and publishes once).

    Its reconnect (`_redis_connect`, after Redis went away) drops the previous client
    and pub/sub without closing them, so their sockets leak. They are kept here and
    closed on shutdown; past a few outages the oldest are closed at once.
    """

    connected: bool  # python-socketio's: False makes the next publish reconnect
    KEEP = 8
    BATCH = 64  # publications per pipeline round trip at most
    QUEUED = 2048  # past this many waiting, an emit waits for its publication

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replaced: list[Any] = []
        self.closing: set[asyncio.Task[None]] = set()
        # Publications waiting for the publisher task (bounded: see _publish).
        self.outbox: list[tuple[bytes, asyncio.Future[None]]] = []
        self.publisher: asyncio.Task[None] | None = None
        self.json = PubSubJson
        host = self.host_id.encode()
        self._own = tuple(b'{"method":"%s","host_id":"%s"' % (m.encode(), host)
                          for m in _OWN_METHODS)

    def initialize(self) -> None:
        super().initialize()  # it sets the server's JSON module; ours is for Redis
        self.json = PubSubJson

    async def emit(self, event: str, data: Any, namespace: str | None = None,
                   room: Any = None, skip_sid: Any = None, callback: Any = None,
                   to: Any = None, **kwargs: Any) -> None:
        room = to or room
        args = list(data) if isinstance(data, tuple) else [data]
        if (callback is not None or kwargs.get("ignore_queue")
                or ParlourPacket.data_is_binary(args)):
            await super().emit(event, data, namespace=namespace, room=room,
                               skip_sid=skip_sid, callback=callback, **kwargs)
            return
        namespace = namespace or "/"
        deliver_local(self, event, data, namespace, room, skip_sid)
        await self._publish({"method": "emit", "host_id": self.host_id, "event": event,
                             "data": args, "binary": False, "namespace": namespace,
                             "room": room, "skip_sid": skip_sid, "callback": None})

    async def _publish(self, data: dict[str, Any]) -> None:
        # One task publishes for every emit, over one connection, in emit order: what
        # queued while a round trip was out goes in the next pipeline. (Stock, each
        # concurrent emit takes a pooled connection of its own, up to the pool's 100,
        # then fails.) The emit does not wait for Redis (a failure was only logged
        # anyway) unless QUEUED publications are already waiting: Redis slow or away.
        done = asyncio.get_running_loop().create_future()
        self.outbox.append((self.json.dumps(data), done))
        if self.publisher is None or self.publisher.done():
            self.publisher = asyncio.create_task(self._publish_queued(), name="redis-publish")
        if len(self.outbox) > self.QUEUED:
            await asyncio.shield(done)

    async def _publish_queued(self) -> None:
        while self.outbox:
            batch = self.outbox[:self.BATCH]
            del self.outbox[:self.BATCH]
            try:
                await self._publish_batch([payload for payload, _ in batch])
            finally:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _publish_batch(self, payloads: list[bytes]) -> None:
        # python-socketio's retry: reconnect once, then log and drop.
        for retries_left in (1, 0):
            try:
                if not self.connected:
                    self._redis_connect()
                if len(payloads) == 1:
                    await self.redis.publish(self.channel, payloads[0])
                else:
                    pipe = self.redis.pipeline(transaction=False)
                    for payload in payloads:
                        pipe.publish(self.channel, payload)
                    await pipe.execute()
                return
            except Exception as exc:
                self._get_logger().error(
                    "Cannot publish to redis... %s", "retrying" if retries_left else "giving up",
                    extra={"redis_exception": str(exc)})
                self.connected = False

    async def _listen(self) -> AsyncIterator[Any]:
        # Parsed here, so python-socketio's listener takes the dict as it is.
        own = self._own
        async for data in super()._listen():
            if isinstance(data, bytes) and data.startswith(own):
                continue
            try:
                yield orjson.loads(data)
            except orjson.JSONDecodeError:
                continue

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        # Emits heard from other nodes (and python-socketio's own local half).
        if message.get("callback") is None and not message.get("binary"):
            data = message["data"]
            if isinstance(data, list):
                data = data[0] if len(data) == 1 else tuple(data)
            if deliver_local(self, message["event"], data, message.get("namespace") or "/",
                             message.get("room"), message.get("skip_sid")):
                return
        await super()._handle_emit(message)

    def _redis_connect(self) -> None:
        previous = [c for c in (self.redis, self.pubsub) if c is not None]
        super()._redis_connect()
        self.replaced.extend(previous)
        while len(self.replaced) > self.KEEP:
            task = asyncio.get_running_loop().create_task(_close_quietly(self.replaced.pop(0)))
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)


async def _close_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()


async def close_client_manager(sio: socketio.AsyncServer) -> None:
    """Stop the Redis manager's listener and close its connections.

    python-socketio's shutdown() stops Engine.IO only; its pub/sub task and Redis
    clients would otherwise outlive the app.
    """
    manager = sio.manager
    if not isinstance(manager, socketio.AsyncRedisManager):
        return
    thread = getattr(manager, "thread", None)
    if isinstance(thread, asyncio.Task):
        thread.cancel()
        await asyncio.gather(thread, return_exceptions=True)
    clients = [getattr(manager, name, None) for name in ("pubsub", "redis")]
    if isinstance(manager, ParlourRedisManager):
        if manager.publisher is not None:  # what is queued goes out, briefly
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(manager.publisher), 2)
            manager.publisher.cancel()
            await asyncio.gather(manager.publisher, return_exceptions=True)
        for _, done in manager.outbox:
            done.cancel()
        manager.outbox = []
        clients += manager.replaced
        manager.replaced = []
        await asyncio.gather(*manager.closing, return_exceptions=True)
    for client in clients:
        if client is not None:
            await _close_quietly(client)


async def close_socket(sio: socketio.AsyncServer, eio_sid: str, *, abort: bool) -> None:
    """Close one Engine.IO socket without waiting for its queue to drain.

    engineio's own disconnect waits until the client has read every queued packet,
    which never happens for a client that stopped reading.
    """
    sock = sio.eio.sockets.get(eio_sid)
    if sock is not None:
        await sock.close(wait=False, abort=abort)
        # Wake its writer: after the CLOSE packet it closes the transport itself
        # rather than waiting for the client to hang up.
        with contextlib.suppress(asyncio.QueueFull):
            sock.queue.put_nowait(None)
        sio.eio.sockets.pop(eio_sid, None)


async def close_all_sockets(sio: socketio.AsyncServer) -> None:
    """Tell every client goodbye (they reconnect elsewhere) without waiting on any."""
    for eio_sid in list(sio.eio.sockets):
        with contextlib.suppress(Exception):
            await close_socket(sio, eio_sid, abort=False)
