"""`data_dir/node.json`: how the command line finds the server running on a data directory.

`parlour serve` writes it once it listens and removes it when it stops. It carries the
URL to ask (`parlour check`) and, with the embedded SecantusDB, that database's URI: two
processes cannot open one data directory, so `parlour users` goes through the running
server's database instead of starting its own.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

NODE_FILE = "node.json"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A running server, as recorded in its data directory."""

    url: str
    pid: int
    node_id: str
    version: str
    # The embedded SecantusDB's URI (loopback), or None with a configured mongo.uri.
    mongo_uri: str | None = None


def node_path(data_dir: Path) -> Path:
    """Where the node file of `data_dir` lives."""
    return data_dir / NODE_FILE


def write_node(data_dir: Path, info: NodeInfo) -> None:
    """Write the node file atomically, readable by its owner only."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = node_path(data_dir).with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(info), handle)
    os.replace(tmp, node_path(data_dir))


def remove_node(data_dir: Path, pid: int) -> None:
    """Remove the node file if this process wrote it."""
    found = _read(node_path(data_dir))
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            node_path(data_dir).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read(path: Path) -> NodeInfo | None:
    try:
        data = json.loads(path.read_text())
        return NodeInfo(
            url=str(data["url"]), pid=int(data["pid"]), node_id=str(data.get("node_id", "")),
            version=str(data.get("version", "")),
            mongo_uri=str(data["mongo_uri"]) if data.get("mongo_uri") else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_node(data_dir: Path) -> NodeInfo | None:
    """The server recorded in `data_dir` if its process still runs (a stale file is ignored)."""
    info = _read(node_path(data_dir))
    if info is None or info.pid == os.getpid() or not _alive(info.pid):
        return None
    return info
