"""An MCP server for the tests, written with the `mcp` SDK.

    python tests/mcp_server.py stdio
    python tests/mcp_server.py http PORT
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("parlour-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Say the text back, with the server's process id."""
    return f"{text} (pid {os.getpid()})"


@server.tool()
async def wait(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "waited"


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason (an isError result)."""
    raise ToolError(reason)


@server.tool()
def crash() -> str:
    """End the server process at once (to test reconnection)."""
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
