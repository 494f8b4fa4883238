"""The browser client under `server.base_path`, with the security headers, in Chromium."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playwright.async_api import expect

from tests.client import start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.web_fixtures import create_room, needs_chromium, send, sign_up

pytestmark = needs_chromium


@dataclass
class Mounted:
    """What sign_up needs: the URL the client is served at."""

    url: str


async def test_the_client_works_under_a_base_path(make_settings: Any, new_page: Any) -> None:
    server = await start_parlour(
        make_settings(server__base_path="/parlour", llm__default_model="scripted:fixed"),
        providers={"scripted": ScriptedProvider(deltas=["Under ", "a ", "prefix."])},
    )
    try:
        page = await new_page()
        responses: list[Any] = []
        page.on("response", lambda r: responses.append(r))
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        await sign_up(page, Mounted(f"{server.url}/parlour"), "Petra")  # type: ignore[arg-type]
        await create_room(page, "Prefixed")
        await send(page, "hello there")
        reply = page.locator('#message-list li[data-role="assistant"][data-status="complete"]')
        await expect(reply).to_contain_text("Under a prefix.", timeout=15_000)
        # Everything came from under the prefix, with the headers on.
        paths = {r.url.split(server.url, 1)[1] for r in responses}
        assert all(p.startswith("/parlour/") for p in paths), paths
        ws_base = server.url.replace("http://", "ws://")
        assert sockets and all(u.startswith(f"{ws_base}/parlour/socket.io/") for u in sockets)
        page_response = next(r for r in responses if r.url == f"{server.url}/parlour/")
        headers = await page_response.all_headers()
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    finally:
        await server.close()
