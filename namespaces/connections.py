"""Who is behind each local socket, and the sweep that enforces expiry and send buffers."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import socketio

from app.events import Emitter
from app.models import Principal
from app.tasks import cancel_and_wait
from app.token_versions import TokenVersions
from namespaces.server import close_socket

log = logging.getLogger(__name__)


@dataclass
class Connection:
    principal: Principal
    namespace: str
    rooms: set[str] = field(default_factory=set)


class ConnectionRegistry:
    """Local sockets by sid; a periodic sweep disconnects expired and backed-up clients."""

    def __init__(
        self, sio: socketio.AsyncServer, emitter: Emitter, max_queue: int,
        versions: TokenVersions,
    ) -> None:
        self._sio = sio
        self._versions = versions
        self._emitter = emitter
        self._max_queue = max_queue
        self._conns: dict[str, Connection] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, sid: str, principal: Principal, namespace: str) -> Connection:
        conn = Connection(principal, namespace)
        self._conns[sid] = conn
        return conn

    def get(self, sid: str) -> Connection | None:
        return self._conns.get(sid)

    def pop(self, sid: str) -> Connection | None:
        return self._conns.pop(sid, None)

    def __len__(self) -> int:
        return len(self._conns)

    def expire_key(self, key_id: str) -> None:
        """Sockets opened with a revoked API key end at the next sweep (`session_expired`)."""
        for conn in self._conns.values():
            if conn.principal.key_id == key_id:
                conn.principal = conn.principal.model_copy(update={"expires_at": 1.0})

    def start(self) -> None:
        """Start the sweep task (cancelled by stop())."""
        self._task = asyncio.create_task(self._sweep_forever(), name="connection-sweep")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.sweep()
            except Exception:
                log.exception("connection sweep failed")

    async def sweep(self) -> None:
        """Expire sessions whose token ran out or was revoked (log-out elsewhere, account
        deleted: known from the cache, no I/O); drop clients whose send queue backed up."""
        now = time.time()
        for sid, conn in list(self._conns.items()):
            expired = conn.principal.expires_at and conn.principal.expires_at <= now
            if expired or self._versions.revoked(conn.principal):
                log.info("session ended for %s (%s)", conn.principal.user_id, sid)
                await self._emitter.session_expired(sid)
                # Bounded: a client that also stopped reading must not stall the sweep.
                try:
                    await asyncio.wait_for(
                        self._sio.disconnect(sid, namespace=conn.namespace), 5
                    )
                except TimeoutError:
                    log.warning("expired client %s did not take its disconnect", sid)
                continue
            backlog = self._queue_length(sid, conn.namespace)
            if backlog > self._max_queue:
                log.warning("disconnecting slow client %s: %d packets queued", sid, backlog)
                eio_sid = self._sio.manager.eio_sid_from_sid(sid, conn.namespace)
                if eio_sid is not None:
                    # Abort: its queue will never drain, so nothing more is sent to it.
                    await close_socket(self._sio, eio_sid, abort=True)

    def _queue_length(self, sid: str, namespace: str) -> int:
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, namespace)
        sock = self._sio.eio.sockets.get(eio_sid) if eio_sid else None
        if sock is None:
            return 0
        return int(sock.queue.qsize())
