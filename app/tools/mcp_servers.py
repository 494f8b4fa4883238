"""MCP servers' tools, named `<server>__<tool>`, through the official `mcp` SDK.

Each configured server has one connection task that owns its session (the SDK's anyio
scopes must be entered and left in the same task): it connects, lists the tools, pings
now and then, and reconnects with backoff when the session dies. Calls from replies go
through the live session; while it is down they get an error result naming the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, CallToolResult

from app.config_features import MCPServerSettings
from app.tasks import cancel_and_wait
from app.tools.base import Tool, ToolContext, ToolError, check_schema, to_json

log = logging.getLogger(__name__)

NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 64  # OpenAI's limit for a function name
PING_SECONDS = 30.0
CONNECT_TIMEOUT = 15.0
BACKOFF_MAX = 60.0
MAX_TOOLS = 128  # per server


def tool_name(server: str, tool: str) -> str:
    """The name the model sees: `<server>__<tool>` with unusable characters replaced."""
    return f"{server}__{NAME_CHARS.sub('_', tool)}"


def _result_text(result: CallToolResult) -> str:
    """A call's content as text for the model (structured content when there is no text)."""
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            parts.append(f"[{getattr(block, 'type', 'content')} omitted]")
    if not parts and result.structured_content is not None:
        return to_json(result.structured_content)
    return "\n".join(parts)


class MCPServer:
    """One configured MCP server: its connection task, its tools, calls to it."""

    def __init__(self, name: str, settings: MCPServerSettings, timeout: float) -> None:
        self.name = name
        self._settings = settings
        self._timeout = timeout
        self._client: Client | None = None
        self._tools: list[Tool] = []
        self._task: asyncio.Task[None] | None = None
        self._broken = asyncio.Event()
        self._connected = asyncio.Event()
        self.last_error = "not connected yet"

    def _target(self) -> StdioServerParameters | str:
        if self._settings.command is not None:
            command, *args = self._settings.command
            return StdioServerParameters(command=command, args=args, env=self._settings.env)
        assert self._settings.url is not None
        return self._settings.url

    def tools(self) -> Sequence[Tool]:
        """The server's tools while it is connected (none while it is down)."""
        return self._tools

    def start(self) -> None:
        """Start the connection task."""
        self._task = asyncio.create_task(self._run(), name=f"mcp-{self.name}")

    async def wait_connected(self, seconds: float) -> bool:
        """Wait until the first connection is up (False when it is not, within `seconds`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._connected.wait()
        return self._connected.is_set()

    async def close(self) -> None:
        """End the session (the stdio server process with it)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._session()
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the SDK and the transports raise many types
                self.last_error = _describe(exc)
                log.warning("MCP server %s: %s; retrying in %.0f s",
                            self.name, self.last_error, delay)
            self._tools = []
            self._connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    @property
    def connected(self) -> bool:
        """Whether a session is up."""
        return self._client is not None

    async def _session(self) -> None:
        self._broken.clear()
        async with contextlib.AsyncExitStack() as stack:
            # The SDK closes the transport (and stops a stdio server) in a shielded scope.
            stack.callback(self._forget)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                client = await stack.enter_async_context(
                    Client(self._target(), read_timeout_seconds=self._timeout)
                )
            self._tools = await self._list_tools(client)
            self._client = client
            self._connected.set()
            log.info("MCP server %s connected: %d tools", self.name, len(self._tools))
            while not self._broken.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_SECONDS):
                        await self._broken.wait()
                if not self._broken.is_set():
                    async with asyncio.timeout(self._timeout):
                        await client.send_ping()
            log.warning("MCP server %s: %s; reconnecting", self.name, self.last_error)

    def _lost(self, client: Client, why: str) -> None:
        """A call found the session dead: stop offering it; the task reconnects."""
        if self._client is client:
            self.last_error = why
            self._forget()
            self._broken.set()

    def _forget(self) -> None:
        self._client = None
        self._tools = []

    async def _list_tools(self, client: Client) -> list[Tool]:
        tools: list[Tool] = []
        cursor: str | None = None
        while len(tools) < MAX_TOOLS:
            listing = await client.list_tools(cursor=cursor)
            for remote in listing.tools:
                tool = self._tool(remote.name, remote.description or "", remote.input_schema)
                if tool is not None:
                    tools.append(tool)
            cursor = listing.next_cursor
            if not cursor:
                break
        return tools[:MAX_TOOLS]

    def _tool(self, remote: str, description: str, schema: dict[str, Any]) -> Tool | None:
        name = tool_name(self.name, remote)
        problem = check_schema(schema)
        if len(name) > MAX_NAME:
            problem = f"the name {name!r} is longer than {MAX_NAME} characters"
        if problem is not None:
            log.warning("MCP server %s: tool %s skipped: %s", self.name, remote, problem)
            return None

        async def run(arguments: dict[str, Any], context: ToolContext) -> str:
            return await self.call(remote, arguments)

        return Tool(name=name, description=description[:1024], parameters=schema,
                    source=f"mcp:{self.name}", run=run)

    async def call(self, remote: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool `remote`; ToolError for every failure."""
        client = self._client
        if client is None:
            raise ToolError(f"the MCP server {self.name} is not connected ({self.last_error})")
        try:
            result = await client.call_tool(remote, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._lost(client, "the connection closed")
            raise ToolError(f"the MCP server {self.name} failed: {exc.message}") from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            self._lost(client, _describe(exc))
            raise ToolError(f"the MCP server {self.name} is unreachable: {_describe(exc)}"
                            ) from exc
        text = _result_text(result)
        if result.is_error:
            raise ToolError(text or f"{remote} failed")
        return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return str(exc) or type(exc).__name__


class MCPServers:
    """Every configured MCP server, as one tool source."""

    def __init__(self, servers: dict[str, MCPServerSettings], timeout: float) -> None:
        self._servers = [MCPServer(name, s, timeout) for name, s in servers.items()]

    def tools(self) -> Sequence[Tool]:
        """The tools of the servers that are connected."""
        return [tool for server in self._servers for tool in server.tools()]

    async def start(self, wait_seconds: float = CONNECT_TIMEOUT) -> None:
        """Start every connection; wait (bounded) for the first connections to come up."""
        for server in self._servers:
            server.start()
        results = await asyncio.gather(*(s.wait_connected(wait_seconds) for s in self._servers))
        for server, ok in zip(self._servers, results, strict=True):
            if not ok:
                log.warning("MCP server %s is not reachable yet (%s); its tools appear "
                            "when it is", server.name, server.last_error)

    async def close(self) -> None:
        """Close every session."""
        await asyncio.gather(*(s.close() for s in self._servers))

    def status(self) -> dict[str, Any]:
        """Per server: connected, tools, last error (for logs and `parlour check`)."""
        return {s.name: {"connected": s.connected, "tools": len(s.tools()),
                         "error": None if s.connected else s.last_error}
                for s in self._servers}

