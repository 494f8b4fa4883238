"""Fixtures for the tool tests: the test MCP server over streamable HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, stop, wait_port

MCP_SERVER = str(Path(__file__).with_name("mcp_server.py"))


@pytest.fixture(scope="session")
def http_mcp() -> Iterator[str]:
    """tests/mcp_server.py over streamable HTTP on a free port; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, MCP_SERVER, "http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, 60, proc)
    yield f"http://127.0.0.1:{port}/mcp"
    stop(proc)
