"""Cross-site requests: Origin and Content-Type checks on every state-changing route.

The routes come from the application's router, so a route added later is covered too.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from tests.client import Parlour, User, start_parlour

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
EVIL = "https://evil.example"
ALLOWED = "https://app.example"
CROSS_ORIGIN = "cross-origin request refused"


@pytest.fixture
async def server(make_settings: Any) -> AsyncIterator[Parlour]:
    server = await start_parlour(
        make_settings(server__cors_origins=[ALLOWED], llm__default_model=None)
    )
    yield server
    await server.close()


def state_changing_routes(server: Parlour) -> list[tuple[str, str]]:
    """(method, path) of every POST/PUT/PATCH/DELETE route, placeholders filled in."""
    found = set()
    for route in server.runner.app.router.routes():
        if route.method not in UNSAFE:
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("path") or info.get("formatter")
        if not template or template.startswith("/socket.io"):
            continue
        found.add((route.method, re.sub(r"\{[^}]+\}", "0" * 32, template)))
    assert len(found) >= 10, found  # the router was read, not an empty list
    return sorted(found)


async def logged_in_browser(server: Parlour) -> tuple[aiohttp.ClientSession, User]:
    """A client holding the session cookies (as a browser would), and its user."""
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    user = await server.signup()
    async with browser.post(
        server.url + "/api/v1/auth/login",
        json={"email": user.email, "password": "correct horse 1"},
    ) as resp:
        assert resp.status == 200
    return browser, user


async def send(http: aiohttp.ClientSession, url: str, method: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, allow_redirects=False, **kwargs) as resp:
        data = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, data


async def test_text_plain_bodies_are_refused_on_every_state_changing_route(
    server: Parlour,
) -> None:
    user = await server.signup()
    for method, path in state_changing_routes(server):
        status, data = await send(
            server.http, server.url + path, method, data=b'{"title": "x", "text": "x"}',
            headers={"Content-Type": "text/plain", "Authorization": f"Bearer {user.token}"},
        )
        assert status == 415, (method, path, status, data)
        assert data["error"]["code"] == "invalid_payload"
        assert "application/json" in data["error"]["message"]


async def test_cross_origin_cookie_requests_are_refused_on_every_state_changing_route(
    server: Parlour,
) -> None:
    browser, user = await logged_in_browser(server)
    app_client = aiohttp.ClientSession()  # no cookie jar contents: Bearer only
    try:
        for method, path in state_changing_routes(server):
            url = server.url + path
            status, data = await send(browser, url, method, json={}, headers={"Origin": EVIL})
            assert status == 403, (method, path, status, data)
            assert data["error"]["code"] == "forbidden" and CROSS_ORIGIN in data["error"]["message"]
            # The same request from the server's own origin, or a configured one, passes
            # the check (and gets whatever the route answers).
            for origin in (server.url, ALLOWED):
                status, data = await send(
                    browser, url, method, json={}, headers={"Origin": origin}
                )
                message = (data or {}).get("error", {}).get("message", "")
                assert CROSS_ORIGIN not in message, (method, path, origin)
            # Authorization: Bearer without cookies cannot be forged by another site.
            status, data = await send(
                app_client, url, method, json={},
                headers={"Origin": EVIL, "Authorization": f"Bearer {user.token}"},
            )
            message = (data or {}).get("error", {}).get("message", "")
            assert CROSS_ORIGIN not in message, (method, path)
    finally:
        await browser.close()
        await app_client.close()


async def test_login_csrf_is_refused(server: Parlour) -> None:
    user = await server.signup()
    creds = f'{{"email": "{user.email}", "password": "correct horse 1"}}'
    async with aiohttp.ClientSession() as victim:
        # An HTML form (text/plain) posting the attacker's credentials.
        status, _ = await send(
            victim, server.url + "/api/v1/auth/login", "POST", data=creds.encode(),
            headers={"Content-Type": "text/plain", "Origin": EVIL},
        )
        assert status in (403, 415)
        status, _ = await send(
            victim, server.url + "/api/v1/auth/login", "POST", data=creds.encode(),
            headers={"Content-Type": "text/plain"},
        )
        assert status == 415
        status, _ = await send(
            victim, server.url + "/api/v1/auth/login", "POST",
            data={"email": user.email, "password": "correct horse 1"},
        )
        assert status == 415  # urlencoded on a JSON route
        assert len(victim.cookie_jar) == 0


async def test_websocket_upgrades_check_the_origin(server: Parlour) -> None:
    browser, user = await logged_in_browser(server)
    try:
        status, data = await server.request("GET", "/api/v1/session_id", user)
        url = f"{server.url}/api/v1/ws/chat?session_id={data['session_id']}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await browser.ws_connect(url, origin=EVIL)
        assert refused.value.status == 403
        async with browser.ws_connect(url, origin=server.url) as ws:
            assert not ws.closed
        async with browser.ws_connect(url, origin=ALLOWED) as ws:
            assert not ws.closed
    finally:
        await browser.close()
    # A token in the URL and no cookie: nothing another site could forge.
    async with aiohttp.ClientSession() as app_client, app_client.ws_connect(
        f"{url}&token={user.token}", origin=EVIL
    ) as ws:
        assert not ws.closed


async def test_socketio_allows_its_own_origin_and_configured_ones_only(server: Parlour) -> None:
    user = await server.signup()
    for origin, accepted in ((server.url, True), (ALLOWED, True), (EVIL, False)):
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(
                server.url, namespaces=["/assistant/realtime"], auth={"token": user.token},
                headers={"Origin": origin}, transports=["websocket"], wait_timeout=5,
            )
            assert accepted, origin
        except socketio.exceptions.ConnectionError:
            assert not accepted, origin
        finally:
            await client.disconnect()


async def test_get_session_id_changes_nothing(server: Parlour) -> None:
    user = await server.signup()
    status, data = await server.request("GET", "/api/v1/session_id", user)
    assert status == 200
    session = data["session_id"]
    status, _ = await server.request("GET", f"/api/v1/chat/{session}", user)
    assert status == 404  # nothing was created by the GET
    url = f"{server.url}/api/v1/ws/chat?session_id={session}&token={user.token}"
    async with server.http.ws_connect(url) as ws:
        assert not ws.closed
    status, room = await server.request("GET", f"/api/v1/chat/{session}", user)
    assert status == 200 and room["owner_id"] == user.user_id
    # Someone else's session stays theirs.
    other = await server.signup()
    async with aiohttp.ClientSession() as fresh, fresh.get(
        f"{server.url}/api/v1/ws/chat?session_id={session}&token={other.token}"
    ) as resp:
        assert resp.status == 404


async def test_own_origin_behind_a_proxy(server: Parlour) -> None:
    browser, _ = await logged_in_browser(server)
    try:
        host = f"127.0.0.1:{server.port}"
        for headers, allowed in (
            ({"Origin": f"https://{host}"}, True),  # TLS ended by a proxy that says nothing
            ({"Origin": "https://chat.example", "X-Forwarded-Host": "chat.example"}, True),
            ({"Origin": "https://chat.example:8443", "Host": "chat.example:8"}, False),
            ({"Origin": "null"}, False),
        ):
            status, data = await send(
                browser, server.url + "/api/v1/chat", "POST", json={}, headers=headers
            )
            assert (status == 201) == allowed, (headers, status, data)
    finally:
        await browser.close()
