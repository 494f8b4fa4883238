"""MCP tools through the official SDK: a test server over stdio and streamable HTTP."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import pytest

from app.config_features import MCPServerSettings, ToolsSettings
from app.llm.base import ToolCall
from app.tools.base import ToolContext
from app.tools.mcp_servers import MCPServers
from app.tools.registry import ToolRegistry
from tests.servers import free_port, wait_for
from tests.test_tool_loop import ROOM
from tests.tool_fixtures import MCP_SERVER as SERVER

CTX = ToolContext(ROOM, "u1")
NAMES = ["add", "crash", "echo", "fail", "wait"]


async def started(wait: float = 20, **servers: MCPServerSettings) -> MCPServers:
    hub = MCPServers(servers, timeout=5)
    await hub.start(wait_seconds=wait)
    return hub


def stdio() -> MCPServerSettings:
    return MCPServerSettings(command=[sys.executable, SERVER, "stdio"])


@pytest.fixture(scope="module")
async def stdio_hub() -> AsyncIterator[MCPServers]:
    """One stdio server for the tests that leave it running (it takes seconds to start)."""
    hub = await started(local=stdio())
    yield hub
    await hub.close()


async def call(hub: MCPServers, name: str, args: dict[str, object], timeout: float = 5
               ) -> tuple[str, str]:
    registry = ToolRegistry(ToolsSettings(timeout_seconds=timeout), [hub])
    result = await registry.for_room([name], CTX).call(ToolCall("c1", name, json.dumps(args)))
    return result.status, result.content


async def test_stdio_server_tools_are_listed_and_called(stdio_hub: MCPServers) -> None:
    tools = {t.name: t for t in stdio_hub.tools()}
    assert sorted(tools) == [f"local__{n}" for n in NAMES]
    add = tools["local__add"]
    assert add.source == "mcp:local" and add.configured
    assert add.parameters["properties"].keys() == {"a", "b"}
    assert await call(stdio_hub, "local__add", {"a": 2, "b": 40}) == ("done", "42")


async def test_mcp_tool_errors_and_schema_errors_are_error_results(stdio_hub: MCPServers) -> None:
    status, content = await call(stdio_hub, "local__fail", {"reason": "quota exceeded"})
    assert status == "error" and "quota exceeded" in content
    status, content = await call(stdio_hub, "local__add", {"a": "two", "b": 1})
    assert status == "error" and "invalid arguments for local__add" in content
    status, content = await call(stdio_hub, "local__wait", {"seconds": 5}, timeout=0.3)
    assert status == "error" and "timed out" in content
    # The session survives all three.
    assert await call(stdio_hub, "local__add", {"a": 1, "b": 1}) == ("done", "2")


async def test_a_dead_stdio_server_is_an_error_result_then_reconnects() -> None:
    hub = await started(local=stdio())
    try:
        _, before = await call(hub, "local__echo", {"text": "hi"})
        status, content = await call(hub, "local__crash", {})
        assert status == "error" and "local" in content
        # Down: its tools are gone and a call is a clear error, not a crash.
        assert hub.tools() == [] and hub.status()["local"]["connected"] is False
        registry = ToolRegistry(ToolsSettings(), [hub])
        result = await registry.for_room(["local__echo"], CTX).call(
            ToolCall("c2", "local__echo", '{"text": "hi"}'))
        assert result.status == "error" and "not available" in result.content
        await wait_for(lambda: hub.status()["local"]["connected"], timeout=20)
        status, after = await call(hub, "local__echo", {"text": "hi"})
        assert status == "done" and after != before  # answered by a new server process
    finally:
        await hub.close()


async def test_streamable_http_server(http_mcp: str) -> None:
    hub = await started(remote=MCPServerSettings(url=http_mcp))
    try:
        assert sorted(t.name for t in hub.tools()) == [f"remote__{n}" for n in NAMES]
        assert await call(hub, "remote__add", {"a": 3, "b": 4}) == ("done", "7")
        status, content = await call(hub, "remote__echo", {"text": "over http"})
        assert status == "done" and content.startswith("over http")
    finally:
        await hub.close()


async def test_an_unreachable_server_has_no_tools_and_says_why() -> None:
    hub = await started(wait=1, gone=MCPServerSettings(
        url=f"http://127.0.0.1:{free_port()}/mcp"))
    try:
        assert hub.tools() == []
        status = hub.status()["gone"]
        assert status["connected"] is False and status["error"]
    finally:
        await hub.close()
