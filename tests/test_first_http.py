"""Every REST failure a sentence, and OpenAPI that says what comes back (issue 12, §7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from tests.client import Parlour, User, start_parlour
from tests.scripted_provider import ScriptedProvider


@pytest.fixture
async def server(make_settings: Any) -> AsyncIterator[Parlour]:
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed", auth__login_max_failures=1,
                      limits__messages_per_minute=1),
        providers={"scripted": ScriptedProvider()},
    )
    yield server
    await server.close()


async def call(
    server: Parlour, method: str, path: str, user: User | None = None, **kwargs: Any
) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON body or None, headers)."""
    headers = dict(kwargs.pop("headers", {}))
    if user is not None:
        headers["Authorization"] = f"Bearer {user.token}"
    async with server.http.request(method, server.url + path, headers=headers, **kwargs) as r:
        body = await r.json() if r.content_type == "application/json" else None
        return r.status, body, dict(r.headers)


async def test_every_429_says_when_to_retry(server: Parlour) -> None:
    user = await server.signup()
    bad = {"email": user.email, "password": "wrong password"}
    assert (await call(server, "POST", "/api/v1/auth/login", json=bad))[0] == 401
    status, body, headers = await call(server, "POST", "/api/v1/auth/login", json=bad)
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert headers["Retry-After"] == "300"  # auth.login_window_seconds

    status, chat, _ = await call(server, "POST", "/api/v1/chat", user, json={})
    ask = {"text": "hello", "chat_id": chat["chat_id"]}
    assert (await call(server, "POST", "/api/v1/run", user, json=ask))[0] == 200
    status, body, headers = await call(server, "POST", "/api/v1/run", user, json=ask)
    assert status == 429 and headers["Retry-After"] == "60"  # messages per minute


async def test_wrong_method_on_a_known_route_is_405_with_allow(server: Parlour) -> None:
    user = await server.signup()
    cases = [
        ("GET", "/api/v1/run", "POST"),
        ("POST", "/api/v1/auth/me", "GET, HEAD"),
        ("PUT", "/api/v1/chat/abc", "DELETE, GET, HEAD, PATCH"),
        ("DELETE", "/api/v1/documents", "GET, HEAD, POST"),
        ("POST", "/docs", "GET, HEAD"),
    ]
    for method, path, allow in cases:
        status, body, headers = await call(server, method, path, user)
        assert status == 405, (method, path, body)
        assert headers["Allow"] == allow
        assert body["error"]["code"] == "invalid_payload"
        assert body["error"]["message"] == f"{method} is not allowed on {path}; use {allow}"
    status, body, _ = await call(server, "GET", "/api/v1/no-such-route", user)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert (await call(server, "GET", "/"))[0] == 200  # the web client is still served


async def test_errors_name_the_fields_the_client_sent(server: Parlour) -> None:
    user = await server.signup()
    status, body, _ = await call(server, "POST", "/api/v1/auth/token",
                                 data={"email": user.email, "password": "correct horse 1"})
    assert status == 422 and body["error"]["message"].startswith("username:")
    status, body, _ = await call(server, "POST", "/api/v1/auth/token", data={
        "grant_type": "password", "username": user.email, "password": "correct horse 1"})
    assert status == 200 and body["token_type"] == "bearer"

    status, body, _ = await call(server, "POST", "/api/v1/auth/signup", json={
        "email": "notanemail", "password": "long enough", "name": "N"})
    assert status == 422
    assert body["error"]["message"] == "email: must be an email address such as ada@example.com"


async def test_uploads_name_the_files_field_and_refuse_empty_files(server: Parlour) -> None:
    user = await server.signup()
    _, chat, _ = await call(server, "POST", "/api/v1/chat", user, json={})
    path = f"/api/v1/chat/{chat['chat_id']}/upload"
    singular = aiohttp.FormData()
    singular.add_field("file", b"notes", filename="notes.txt", content_type="text/plain")
    status, body, _ = await call(server, "POST", path, user, data=singular)
    assert status == 422
    assert "no part named `files` (got `file`)" in body["error"]["message"]

    empty = aiohttp.FormData()
    empty.add_field("files", b"hello", filename="fine.txt", content_type="text/plain")
    empty.add_field("files", b"", filename="empty.txt", content_type="text/plain")
    status, body, _ = await call(server, "POST", path, user, data=empty)
    assert status == 422 and body["error"]["message"] == "files: empty.txt is empty"
    _, listed, _ = await call(server, "GET", f"/api/v1/chat/{chat['chat_id']}/files", user)
    assert listed == {"files": []}  # nothing half-done: fine.txt went too


async def test_deleting_a_document_twice_is_204_like_chat_files(server: Parlour) -> None:
    user = await server.signup()
    doc = aiohttp.FormData()
    doc.add_field("files", b"apples are red", filename="a.txt", content_type="text/plain")
    status, body, _ = await call(server, "POST", "/api/v1/documents", user, data=doc)
    assert status == 202
    path = f"/api/v1/documents/{body['documents'][0]['document_id']}"
    assert (await call(server, "DELETE", path, user))[0] == 204
    assert (await call(server, "DELETE", path, user))[0] == 204
    assert (await call(server, "GET", path, user))[0] == 404


async def test_websocket_sessions_stay_out_of_the_room_list(server: Parlour) -> None:
    user = await server.signup()
    _, chat, _ = await call(server, "POST", "/api/v1/chat", user, json={"title": "Mine"})
    sessions = [(await call(server, "GET", "/api/v1/session_id", user))[1]["session_id"]
                for _ in range(3)]
    for session in sessions:  # a session's room is made when its WebSocket opens
        url = f"{server.url}/api/v1/ws/chat?session_id={session}&token={user.token}"
        async with server.http.ws_connect(url) as ws:
            assert not ws.closed
    _, listed, _ = await call(server, "GET", "/api/v1/chat", user)
    assert [c["chat_id"] for c in listed["chats"]] == [chat["chat_id"]]
    # Still the user's room: reachable by id.
    assert (await call(server, "GET", f"/api/v1/chat/{sessions[0]}", user))[0] == 200


def validator(spec: dict[str, Any], name: str) -> Draft202012Validator:
    """Validates against one component schema of the OpenAPI document."""
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    )


async def test_openapi_describes_responses_and_multipart_bodies(server: Parlour) -> None:
    status, spec, _ = await call(server, "GET", "/openapi.json")
    assert status == 200
    paths = spec["paths"]
    for path in ("/api/v1/chat/{chat_id}/upload", "/api/v1/documents", "/api/v1/run"):
        body = paths[path]["post"]["requestBody"]["content"]
        assert "multipart/form-data" in body, path
    upload = paths["/api/v1/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["properties"]["files"]["items"]["format"] == "binary"
    missing = [
        f"{method.upper()} {path}" for path, item in paths.items() for method, op in item.items()
        if not any("content" in answer for code, answer in op["responses"].items()
                   if code.startswith("2")) and not {"204", "302"} & set(op["responses"])
    ]
    assert missing == []

    # Real answers match what the description promises.
    async with server.http.post(server.url + "/api/v1/auth/signup", json={
        "email": "spec@example.com", "password": "long enough", "name": "Spec"}) as r:
        session = await r.json()
    validator(spec, "Session").validate(session)
    user = User(session["user"]["user_id"], "spec@example.com", "Spec",
                session["access_token"], session["refresh_token"])
    _, chat, _ = await call(server, "POST", "/api/v1/chat", user, json={"title": "t"})
    checks = [
        ("Chat", chat),
        ("ChatPage", (await call(server, "GET", "/api/v1/chat", user))[1]),
        ("ModelPage", (await call(server, "GET", "/api/v1/model", user))[1]),
        ("SessionId", (await call(server, "GET", "/api/v1/session_id", user))[1]),
        ("Health", (await call(server, "GET", "/internal/health"))[1]),
        ("Me", (await call(server, "GET", "/api/v1/auth/me", user))[1]),
        ("RunAnswer", (await call(server, "POST", "/api/v1/run", user, json={"text": "hi"}))[1]),
        ("UserMetrics", (await call(server, "GET", "/api/v1/metrics", user))[1]),
        ("Documents", (await call(server, "GET", "/api/v1/documents", user))[1]),
    ]
    for name, answer in checks:
        validator(spec, name).validate(answer)
