"""The embedded SecantusDB: private files, loopback only, credentials required."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from storage.embedded_mongo import PASSWORD_FILE, EmbeddedMongo


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP listener on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


async def test_embedded_db_is_private_loopback_and_needs_credentials(tmp_path: Path) -> None:
    data = tmp_path / "data"
    storage = data / "mongo"
    storage.mkdir(parents=True, mode=0o755)
    stale = storage / "left-over.wt"  # as written by an earlier version (umask 022)
    stale.write_bytes(b"x")
    stale.chmod(0o644)
    daemon = EmbeddedMongo(storage)
    uri = await daemon.start()
    try:
        assert "@127.0.0.1:" in uri
        assert listening_addresses(daemon.port) == {"0100007F"}  # 127.0.0.1 only
        anonymous: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            f"mongodb://127.0.0.1:{daemon.port}/?directConnection=true")
        try:
            with pytest.raises(OperationFailure, match="requires authentication"):
                await anonymous.parlour.notes.insert_one({"text": "anyone?"})
        finally:
            await anonymous.close()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
        try:
            await client.parlour.notes.insert_one({"text": "kept"})
        finally:
            await client.close()
    finally:
        await daemon.stop()

    assert mode(storage) == 0o700
    files = [p for p in storage.rglob("*") if p.is_file()]
    assert files and all(mode(p) == 0o600 for p in files), [
        (p.name, oct(mode(p))) for p in files if mode(p) != 0o600]
    assert mode(data / PASSWORD_FILE) == 0o600
    assert mode(data / "secantusdb.log") == 0o600

    # Restarted: the same credentials, the same data.
    again = EmbeddedMongo(storage)
    uri = await again.start()
    try:
        client = AsyncMongoClient(uri)
        try:
            assert await client.parlour.notes.count_documents({"text": "kept"}) == 1
        finally:
            await client.close()
    finally:
        await again.stop()
