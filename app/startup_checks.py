"""Checks `parlour serve` makes before the slow part of startup, each failing in one sentence."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from app.config import Settings
from app.node_file import running_node

PORT_HINT = "choose another with --port (or PARLOUR_SERVER__PORT)"


class StartupError(Exception):
    """Startup cannot go on (a backend, the port, the data directory); the message says
    what to change. Raised here before the resources start, and by app.main while they do."""


def check_data_dir_free(settings: Settings) -> None:
    """Refuse a second server on a data directory whose embedded database is in use."""
    data_dir = settings.data_dir.resolve()
    node = running_node(data_dir)
    if node is not None and settings.mongo.uri is None:
        raise StartupError(
            f"another parlour (pid {node.pid}, {node.url}) is using {data_dir} and its "
            "embedded database: stop it first, or give this server its own --data-dir"
        )


def bind_sockets(host: str, port: int, data_dir: Path) -> list[socket.socket]:
    """Sockets bound to host:port now, so a busy port fails at once, not after the boot.

    One per address the host resolves to (`localhost`: 127.0.0.1 and ::1). They are not
    listening yet: aiohttp starts listening once every resource is open.
    """
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(
            f"server.host {host!r} is not a known address ({exc.strerror}); "
            "use e.g. 127.0.0.1 or 0.0.0.0"
        ) from exc
    bound: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    for family, kind, proto, _, address in infos:
        if (family, address) in seen:
            continue
        seen.add((family, address))
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address[0], port, *address[2:]))
        except OSError as exc:
            sock.close()
            for other in bound:
                other.close()
            raise StartupError(_bind_error(host, port, exc, data_dir)) from exc
        if port == 0:  # the other addresses take the port the first one got
            port = sock.getsockname()[1]
        bound.append(sock)
    return bound


def _bind_error(host: str, port: int, exc: OSError, data_dir: Path) -> str:
    if exc.errno == errno.EADDRINUSE:
        node = running_node(data_dir.resolve())
        who = f" by parlour pid {node.pid}" if node is not None else ""
        return (
            f"port {port} on {host} is already in use{who}: stop what is using it, or "
            f"{PORT_HINT}"
        )
    if exc.errno == errno.EACCES:
        return f"port {port} needs administrator rights: {PORT_HINT} (above 1023)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"server.host {host!r} is not an address of this machine: use 127.0.0.1, "
            "or 0.0.0.0 for every interface"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def local_url(sock: socket.socket) -> str:
    """The URL a client on this machine uses to reach a bound socket."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
