"""Session fixtures: real servers on loopback (SecantusDB, redis-server, moto, llama.cpp)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings, load_settings
from storage.embedded_mongo import EmbeddedMongo
from tests.client import Parlour, start_parlour
from tests.servers import start_redis, stop

pytest_plugins = [
    "tests.rag_fixtures", "tests.llm_fixtures", "tests.web_fixtures", "tests.tool_fixtures",
    "tests.media_fixtures",
]


@pytest.fixture(scope="session")
async def mongo_uri() -> AsyncIterator[str]:
    """One SecantusDB daemon for the session, in memory; each test uses its own database."""
    daemon = EmbeddedMongo(":memory:")
    uri = await daemon.start()
    yield uri
    await daemon.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server started for the session on a free port."""
    proc, port = start_redis(tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    stop(proc)


@pytest.fixture
def make_settings(mongo_uri: str, tmp_path: Path) -> Any:
    """Settings for a fresh Parlour: its own database and data dir."""
    database = f"t_{uuid.uuid4().hex[:12]}"

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "mongo__uri": mongo_uri,
            "mongo__database": database,
            "auth__jwt_secret": "test-secret-0123456789abcdef-0123456789",
            "server__log_format": "text",
            "llm__local_enabled": False,
        }
        values.update(overrides)
        return load_settings(None, **values)

    return make


@pytest.fixture
async def parlour(make_settings: Any) -> AsyncIterator[Parlour]:
    """A running Parlour on a free loopback port with default settings."""
    server = await start_parlour(make_settings())
    yield server
    await server.close()


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0)
