"""Who is behind each local socket, and the sweep that enforces expiry and send buffers."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

import socketio

from app.config import LimitsSettings
from app.errors import rate_limited
from app.events import Emitter
from app.models import Principal
from app.tasks import cancel_and_wait
from app.token_versions import TokenVersions
from namespaces.server import close_socket
from storage.ratelimit import RateLimiter

CONNECT_WINDOW_SECONDS = 60
SWEEP_QUEUES = 2_000  # send queues read per sweep (a second): each within n / 2,000 s

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Connection:
    principal: Principal
    namespace: str
    # Made on the first join: most sockets of 10,000 idle ones never join a room.
    _rooms: set[str] | None = None

    @property
    def rooms(self) -> set[str]:
        """The rooms this socket joined."""
        if self._rooms is None:
            self._rooms = set()
        return self._rooms


class ConnectionRegistry:
    """Local sockets by sid; a periodic sweep disconnects expired and backed-up clients.

    It also holds the connection limits: connects per address per minute, sockets per
    user (per namespace, on this node) and rooms joined per socket.
    """

    def __init__(
        self,
        sio: socketio.AsyncServer,
        emitter: Emitter,
        max_queue: int,
        versions: TokenVersions,
        limits: LimitsSettings,
        limiter: RateLimiter,
    ) -> None:
        self._sio = sio
        self._versions = versions
        self._emitter = emitter
        self._max_queue = max_queue
        self._limits = limits
        self._limiter = limiter
        self._conns: dict[str, Connection] = {}
        # Open sockets per (user, namespace): the per-user cap without a scan.
        self._per_user: dict[tuple[str, str], int] = {}
        # The sweep scans the sessions only from this time (the earliest expiry) or when
        # a token version changed since it last looked.
        self._next_expiry = 0.0
        self._versions_seen = -1
        self._to_scan: list[str] = []  # Engine.IO sids whose send queue is read next
        self._task: asyncio.Task[None] | None = None

    async def check_connect_rate(self, address: str) -> None:
        """`rate_limited` once `address` connected `limits.connects_per_minute` times."""
        limit = self._limits.connects_per_minute
        if limit and not await self._limiter.hit(
            f"connect:{address}", limit, CONNECT_WINDOW_SECONDS
        ):
            raise rate_limited(
                f"too many connections from your address: at most {limit} a minute "
                "(limits.connects_per_minute)", CONNECT_WINDOW_SECONDS,
            )

    def add(self, sid: str, principal: Principal, namespace: str) -> Connection:
        """Register a socket; `rate_limited` when its user has too many open already."""
        key = (principal.user_id, namespace)
        open_now = self._per_user.get(key, 0)
        if open_now >= self._limits.max_sockets_per_user:
            raise rate_limited(
                f"{open_now} connections are already open for you: close a tab or "
                "device first (limits.max_sockets_per_user)", CONNECT_WINDOW_SECONDS,
            )
        conn = Connection(principal, namespace)
        self._conns[sid] = conn
        if principal.expires_at:
            self._next_expiry = min(self._next_expiry, principal.expires_at)
        self._per_user[key] = open_now + 1
        return conn

    def check_room_capacity(self, sid: str, room_id: str) -> None:
        """`rate_limited` if joining `room_id` would exceed the rooms one socket may hold."""
        conn = self._conns.get(sid)
        if conn is None or room_id in conn.rooms:
            return
        if len(conn.rooms) >= self._limits.max_rooms_per_socket:
            raise rate_limited(
                f"this connection has joined {len(conn.rooms)} rooms: leave one first "
                "(limits.max_rooms_per_socket)", CONNECT_WINDOW_SECONDS,
            )

    def get(self, sid: str) -> Connection | None:
        return self._conns.get(sid)

    def pop(self, sid: str) -> Connection | None:
        conn = self._conns.pop(sid, None)
        if conn is not None:
            key = (conn.principal.user_id, conn.namespace)
            left = self._per_user.get(key, 1) - 1
            if left > 0:
                self._per_user[key] = left
            else:
                self._per_user.pop(key, None)
        return conn

    def __len__(self) -> int:
        return len(self._conns)

    def expire_key(self, key_id: str) -> None:
        """Sockets opened with a revoked API key end at the next sweep (`session_expired`)."""
        for conn in self._conns.values():
            if conn.principal.key_id == key_id:
                conn.principal = conn.principal.model_copy(update={"expires_at": 1.0})
                self._next_expiry = 0.0

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
        deleted: known from the cache, no I/O); drop clients whose send queue backed up.

        It runs every second, so with 10,000 idle sockets it must cost next to nothing:
        the sessions are scanned only when one may have ended (the earliest expiry is
        due, or a token version changed), and the send queues are read straight from
        Engine.IO's sockets, at most SWEEP_QUEUES a second.
        """
        now = time.time()
        changes = self._versions.changes
        if now >= self._next_expiry or changes != self._versions_seen:
            self._versions_seen = changes
            await self._end_sessions(now)
        # The send queues are read SWEEP_QUEUES at a time: with 10,000 sockets each one is
        # looked at every 5 s, and a sweep stays a fraction of a millisecond.
        sockets, limit = self._sio.eio.sockets, self._max_queue
        if not self._to_scan:
            self._to_scan = list(sockets)
        batch = self._to_scan[-SWEEP_QUEUES:]
        del self._to_scan[-SWEEP_QUEUES:]
        backed_up = [
            eio_sid for eio_sid in batch
            if (sock := sockets.get(eio_sid)) is not None and sock.queue.qsize() > limit
        ]
        if backed_up:
            await self._drop_slow(backed_up)

    async def _end_sessions(self, now: float) -> None:
        revoked = self._versions.revoked
        ended = [
            sid for sid, conn in self._conns.items()
            if (conn.principal.expires_at and conn.principal.expires_at <= now)
            or revoked(conn.principal)
        ]
        self._next_expiry = min(
            (c.principal.expires_at for c in self._conns.values() if c.principal.expires_at),
            default=math.inf,
        )
        for sid in ended:
            conn = self._conns.get(sid)
            if conn is None:
                continue
            log.info("session ended for %s (%s)", conn.principal.user_id, sid)
            await self._emitter.session_expired(sid)
            # Bounded: a client that also stopped reading must not stall the sweep.
            try:
                await asyncio.wait_for(self._sio.disconnect(sid, namespace=conn.namespace), 5)
            except TimeoutError:
                log.warning("expired client %s did not take its disconnect", sid)

    async def _drop_slow(self, backed_up: list[str]) -> None:
        """Abort our sockets among Engine.IO sessions whose queue is over `max_queue`."""
        eio_sid_of = self._sio.manager.eio_sid_from_sid
        sockets = self._sio.eio.sockets
        found = {eio_sid_of(sid, conn.namespace): sid for sid, conn in self._conns.items()}
        for eio_sid in backed_up:
            sid, sock = found.get(eio_sid), sockets.get(eio_sid)
            if sid is None or sock is None:
                continue
            log.warning("disconnecting slow client %s: %d packets queued", sid,
                        sock.queue.qsize())
            # Abort: its queue will never drain, so nothing more is sent to it.
            await close_socket(self._sio, eio_sid, abort=True)
