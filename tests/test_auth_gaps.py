"""The whitelist at every door, the SSO hand-over token, base_path, bad settings in one line."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from tests.client import SocketClient, start_parlour
from tests.test_bounded import hang_up
from tests.test_first_cli import cli, one_line_error


async def test_whitelist_holds_at_login_refresh_and_socket_connect(make_settings: Any) -> None:
    first = await start_parlour(make_settings(
        auth__allowed_emails=["ann@example.com", "ben@example.com"]))
    try:
        tokens = {}
        for email in ("ann@example.com", "ben@example.com"):
            status, data = await first.request("POST", "/api/v1/auth/signup", json={
                "email": email, "password": "correct horse 1", "name": email[:3]})
            assert status == 201
            tokens[email] = data
    finally:
        await first.close()
    # Ben is taken off the list; the same database.
    server = await start_parlour(make_settings(auth__allowed_emails=["ann@example.com"]))
    try:
        ben = tokens["ben@example.com"]
        status, body = await server.request("POST", "/api/v1/auth/login", json={
            "email": "ben@example.com", "password": "correct horse 1"})
        assert status == 403 and body["error"]["code"] == "forbidden"
        status, body = await server.request(
            "POST", "/api/v1/auth/refresh", json={"refresh_token": ben["refresh_token"]})
        assert status == 403 and body["error"]["code"] == "forbidden"
        client = SocketClient("/assistant/realtime")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await server.connect(client, None, token=ben["access_token"])
        await hang_up(client.sio)
        assert client.named("connect_error")[0]["data"]["code"] == "unauthorized"
        # The OAuth2 password form too; Ann is still welcome everywhere.
        status, _ = await server.request("POST", "/api/v1/auth/token", data={
            "username": "ben@example.com", "password": "correct horse 1"})
        assert status == 403
        status, _ = await server.request("POST", "/api/v1/auth/login", json={
            "email": "ann@example.com", "password": "correct horse 1"})
        assert status == 200
        ann = SocketClient("/assistant/realtime")
        await server.connect(ann, None, token=tokens["ann@example.com"]["access_token"])
    finally:
        await server.close()


async def test_one_time_login_token_is_single_use(make_settings: Any) -> None:
    server = await start_parlour(make_settings())
    try:
        user = await server.signup()
        token = await server.services.login_tokens.issue(user.user_id)  # type: ignore[union-attr]
        server.http.cookie_jar.clear()
        url = f"{server.url}/api/v1/auth/validate-token"
        async with server.http.get(url, params={"token": token}) as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
            data = await resp.json()
            assert {"access_token", "refresh_token"} <= set(resp.cookies)
        assert data["user"]["user_id"] == user.user_id
        status, me = await server.request("GET", "/api/v1/auth/me")  # by the new cookie
        assert status == 200 and me["user"]["user_id"] == user.user_id
        server.http.cookie_jar.clear()
        async with server.http.get(url, params={"token": token}) as resp:
            assert resp.status == 401
            assert "already used or has expired" in (await resp.json())["error"]["message"]
            assert "access_token" not in resp.cookies
        for bad in ("x", "y" * 300):
            async with server.http.get(url, params={"token": bad}) as resp:
                assert resp.status in (401, 422)
    finally:
        await server.close()


async def test_one_time_login_token_expires(make_settings: Any) -> None:
    server = await start_parlour(make_settings(auth__login_token_ttl_seconds=1))
    try:
        user = await server.signup()
        token = await server.services.login_tokens.issue(user.user_id)  # type: ignore[union-attr]
        await asyncio.sleep(1.5)
        status, body = await server.request(
            "GET", "/api/v1/auth/validate-token", params={"token": token})
        assert status == 401 and body["error"]["code"] == "unauthorized"
    finally:
        await server.close()


async def test_login_success_page_loads_its_own_script(make_settings: Any) -> None:
    server = await start_parlour(make_settings())
    try:
        async with server.http.get(f"{server.url}/login-success-redirect?token=t") as resp:
            assert resp.status == 200 and resp.headers["Referrer-Policy"] == "no-referrer"
            page = await resp.text()
        assert '<script type="module" src="login-success.js"></script>' in page
        async with server.http.get(f"{server.url}/login-success.js") as resp:
            assert resp.status == 200
    finally:
        await server.close()


async def test_base_path_mounts_everything_under_the_prefix(make_settings: Any) -> None:
    server = await start_parlour(make_settings(server__base_path="/parlour/"))
    try:
        base = f"{server.url}/parlour"
        async with server.http.get(f"{base}/") as resp:
            assert resp.status == 200 and "<title>Parlour</title>" in await resp.text()
        async with server.http.get(f"{base}/app.js") as resp:
            assert resp.status == 200
        async with server.http.get(base, allow_redirects=False) as resp:
            assert resp.status == 308 and resp.headers["Location"] == "/parlour/"
        async with server.http.get(f"{server.url}/") as resp:
            assert resp.status == 404
        async with server.http.get(f"{server.url}/api/v1/model") as resp:
            assert resp.status == 404
        async with server.http.post(f"{base}/api/v1/auth/signup", json={
            "email": "pat@example.com", "password": "correct horse 1", "name": "Pat"}) as resp:
            assert resp.status == 201
            data = await resp.json()
            assert resp.cookies["refresh_token"]["path"] == "/parlour/api/v1/auth"
            assert resp.cookies["access_token"]["path"] == "/parlour"
        headers = {"Authorization": f"Bearer {data['access_token']}"}
        async with server.http.get(f"{base}/api/v1/auth/me", headers=headers) as resp:
            assert resp.status == 200
        async with server.http.get(f"{base}/openapi.json") as resp:
            assert (await resp.json())["servers"] == [{"url": "/parlour"}]
        client = SocketClient("/assistant/realtime")
        await client.sio.connect(server.url, namespaces=["/assistant/realtime"],
                                 auth={"token": data["access_token"]},
                                 socketio_path="/parlour/socket.io",
                                 transports=["websocket"], wait_timeout=5)
        try:
            await client.ok("create_room", {})
        finally:
            await client.disconnect()
        other = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await other.connect(server.url, namespaces=["/assistant/realtime"],
                                auth={"token": data["access_token"]},
                                transports=["websocket"], wait_timeout=5)
        await hang_up(other)
    finally:
        await server.close()


@pytest.mark.parametrize(("env", "key"), [
    ({"PARLOUR_AUTH__JWT_SECRET": "too-short"}, "auth.jwt_secret"),
    ({"PARLOUR_AUTH__JWT_SECRET_FILE": "/nonexistent/secret"}, "auth.jwt_secret_file"),
    ({"PARLOUR_SERVER__BASE_PATH": "parlour?x"}, "server.base_path"),
    ({"PARLOUR_SERVER__LOG_LEVEL": "LOUD"}, "server.log_level"),
    ({"PARLOUR_SERVER__CORS_ORIGINS": '["*"]'}, "server.cors_origins"),
    ({"PARLOUR_AUTH__ALLOWED_EMAILS": '["nobody"]'}, "auth.allowed_emails"),
    ({"PARLOUR_AUTH__REFRESH_TTL_SECONDS": "60", "PARLOUR_AUTH__ACCESS_TTL_SECONDS": "900"},
     "refresh_ttl_seconds"),
    ({"PARLOUR_LIMITS__MAX_SOCKETS_PER_USER": "0"}, "limits.max_sockets_per_user"),
])
def test_bad_settings_stop_startup_in_one_line(tmp_path: Any, env: dict[str, str],
                                               key: str) -> None:
    line = one_line_error(cli("serve", "--port", "0", "--data-dir", str(tmp_path), **env))
    assert key in line, line


def test_a_short_secret_file_is_one_line(tmp_path: Any) -> None:
    secret = tmp_path / "secret"
    secret.write_text("short\n")
    line = one_line_error(cli("serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                              PARLOUR_AUTH__JWT_SECRET_FILE=str(secret)))
    assert "auth.jwt_secret_file" in line and "32 bytes" in line


async def test_security_headers_on_the_api_and_the_docs(make_settings: Any) -> None:
    server = await start_parlour(make_settings())
    try:
        for path in ("/api/v1/model", "/api/v1/chat", "/internal/health", "/",
                     "/socket.io/?EIO=4&transport=polling"):
            async with server.http.get(server.url + path) as resp:
                assert resp.headers["X-Content-Type-Options"] == "nosniff", path
                assert resp.headers["Referrer-Policy"] == "same-origin", path
                csp = resp.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp, path
                assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        async with server.http.get(server.url + "/docs") as resp:
            assert "style-src 'self' 'unsafe-inline'" in resp.headers["Content-Security-Policy"]
    finally:
        await server.close()
