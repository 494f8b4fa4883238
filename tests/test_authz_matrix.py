"""The authorization matrix: every route and event with another user's ids, never data.

Generated from the router and the Socket.IO event table: a new route or event whose ids
this file cannot fill, or that it has not classified, fails the coverage tests until it is.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.keys import SIO
from namespaces.server import REALTIME
from tests.client import Parlour, SocketClient, User, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.test_files import form

SECRET = "zebra-7731"  # in every name and text Alice owns: it must never reach Bob
REFUSED = {403, 404}
REFUSED_CODES = {"not_found", "forbidden"}

# Path variables and which of Alice's ids fills them.
ID_FOR = {
    "chat_id": "room_id",
    "file_id": "file_id",
    "document_id": "document_id",
    "message_id": "message_id",
    "key_id": "key_id",
}
# Routes about no one's data (auth, public lists, docs, the client): not in the matrix.
NOT_OWNED = re.compile(
    r"^/(socket\.io/|docs|openapi\.json|login-success-redirect|internal/|\{path\})"
    r"|^/api/v1/(auth/|model$|tools$|session_id$|chat/public$|metrics$|run$|aisuite/|ws/)"
    r"|^/v1/"  # the OpenAI-compatible gateway: the catalog and the caller's own calls
)
# Collections of the caller's own things: Bob's answer must not hold Alice's.
OWN_LISTS = {("GET", "/api/v1/chat"), ("GET", "/api/v1/documents"), ("GET", "/api/v1/keys")}
# Writes a viewer of a room may not make (the rest of the room's routes are reads).
VIEWER_WRITES = {
    ("PATCH", "/api/v1/chat/{chat_id}"),
    ("DELETE", "/api/v1/chat/{chat_id}"),
    ("POST", "/api/v1/chat/{chat_id}/upload"),
    ("DELETE", "/api/v1/chat/{chat_id}/files/{file_id}"),
}

# Socket.IO events: the payload that names Alice's things, and whether a viewer may send it.
EVENTS: dict[str, tuple[dict[str, Any], bool]] = {
    "join_room": ({"room_id": "{room_id}"}, True),
    "leave_room": ({"room_id": "{room_id}"}, True),
    "send_message": ({"room_id": "{room_id}", "content": "hi",
                      "file_ids": ["{file_id}"]}, False),
    "typing": ({"room_id": "{room_id}", "is_typing": True}, False),
    "update_room": ({"room_id": "{room_id}", "title": "mine now"}, False),
    "invite": ({"room_id": "{room_id}", "email": "mallory@example.com"}, False),
    "remove_member": ({"room_id": "{room_id}", "user_id": "{user_id}"}, False),
    "update_member": ({"room_id": "{room_id}", "user_id": "{viewer_id}", "role": "member"},
                      False),
    "stop_generation": ({"room_id": "{room_id}", "message_id": "{message_id}"}, False),
    "regenerate": ({"room_id": "{room_id}", "message_id": "{message_id}"}, False),
    "voice_start": ({"room_id": "{room_id}"}, False),
    "voice_chunk": ({"room_id": "{room_id}", "audio": b"\x00\x00" * 2400}, False),
    "voice_stop": ({"room_id": "{room_id}"}, False),
    "voice_cancel": ({"room_id": "{room_id}"}, False),
}
# Leaving a room one is not in is a no-op that says nothing about the room.
IDEMPOTENT = {"leave_room"}
# Events that name nobody else's ids.
NO_FOREIGN_IDS = {"create_room", "auth_refresh"}


@dataclass
class World:
    server: Parlour
    alice: User
    bob: User
    vera: User  # a viewer of Alice's room
    ids: dict[str, str]


@pytest.fixture
async def world(make_settings: Any) -> AsyncIterator[World]:
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed"),
        providers={"scripted": ScriptedProvider(deltas=[f"{SECRET} answer "])},
    )
    try:
        alice, bob, vera = (await server.signup("Alice"), await server.signup("Bob"),
                            await server.signup("Vera"))
        a = await server.socket(alice)
        room = (await a.ok("create_room", {"title": f"plans {SECRET}",
                                           "system_prompt": f"be {SECRET}"}))["room"]
        room_id = room["room_id"]
        await a.ok("invite", {"room_id": room_id, "email": vera.email, "role": "viewer"})
        message = (await a.ok("send_message", {"room_id": room_id,
                                               "content": f"@assistant the code is {SECRET}"}))["message"]
        await a.wait("assistant_done", timeout=15)
        status, files = await server.request(
            "POST", f"/api/v1/chat/{room_id}/upload", alice,
            data=form((f"{SECRET}.txt", f"file {SECRET}".encode(), "text/plain")))
        assert status == 201, files
        status, docs = await server.request(
            "POST", "/api/v1/documents", alice,
            data=form((f"doc-{SECRET}.md", f"# {SECRET}".encode(), "text/markdown")))
        assert status == 202, docs
        status, key = await server.request(
            "POST", "/api/v1/keys", alice, json={"name": f"key {SECRET}"})
        assert status == 201, key
        ids = {
            "room_id": room_id, "message_id": message["message_id"],
            "file_id": files["files"][0]["file_id"],
            "document_id": docs["documents"][0]["document_id"],
            "user_id": alice.user_id, "viewer_id": vera.user_id, "key_id": key["id"],
        }
        yield World(server, alice, bob, vera, ids)
    finally:
        await server.close()


def routes(server: Parlour) -> list[tuple[str, str]]:
    """(method, path template) of every route the router has, HEAD left out."""
    found = set()
    for route in server.runner.app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if route.method not in ("HEAD", "OPTIONS", "*"):
            found.add((route.method, canonical))
    return sorted(found)


def fill(template: str, ids: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in ID_FOR, f"no id for {{{name}}} in {template}: add it to ID_FOR"
        return ids[ID_FOR[name]]
    return re.sub(r"\{(\w+)\}", one, template)


async def call(server: Parlour, user: User, method: str, path: str) -> tuple[int, str]:
    kwargs: dict[str, Any] = {}
    if path.endswith("/upload") or (path == "/api/v1/documents" and method == "POST"):
        kwargs["data"] = form(("x.txt", b"x", "text/plain"))
    elif method in ("POST", "PATCH"):
        kwargs["json"] = {"title": "mine now"}
    async with server.http.request(method, server.url + path, headers={
        "Authorization": f"Bearer {user.token}"}, **kwargs) as resp:
        return resp.status, (await resp.read()).decode(errors="replace")


async def test_every_route_with_another_users_ids_is_refused(world: World) -> None:
    server, ids = world.server, world.ids
    checked = []
    for method, template in routes(server):
        if NOT_OWNED.search(template):
            continue
        path = fill(template, ids)
        status, text = await call(server, world.bob, method, path)
        assert SECRET not in text, (method, template, status, text[:300])
        if (method, template) in OWN_LISTS:
            assert status < 300, (method, template, status, text[:300])
        elif "{" not in template:
            pass  # creates something of Bob's own; only the secret check applies
        elif method == "DELETE":
            # Idempotent deletes may answer 204 for what the caller does not have; what
            # matters is that Alice's things are still there (checked below).
            assert status in REFUSED | {204}, (method, template, status, text[:300])
        else:
            assert status in REFUSED, (method, template, status, text[:300])
        checked.append((method, template))
    assert len(checked) >= 15, checked
    # Nothing of Alice's changed.
    status, room = await server.request("GET", f"/api/v1/chat/{ids['room_id']}", world.alice)
    assert status == 200 and SECRET in room["title"]
    status, _ = await server.request(
        "GET", f"/api/v1/chat/{ids['room_id']}/files/{ids['file_id']}", world.alice)
    assert status == 200
    status, _ = await server.request(
        "GET", f"/api/v1/documents/{ids['document_id']}", world.alice)
    assert status == 200
    status, keys = await server.request("GET", "/api/v1/keys", world.alice)
    assert status == 200 and [k["id"] for k in keys["keys"]] == [ids["key_id"]]


async def test_a_viewer_cannot_write_over_rest(world: World) -> None:
    server, ids = world.server, world.ids
    templates = {t for _, t in routes(server)}
    for method, template in sorted(VIEWER_WRITES):
        assert template in templates, f"{template} is no longer a route"
        status, text = await call(server, world.vera, method, fill(template, ids))
        assert status in REFUSED, (method, template, status, text[:300])
    status, files = await server.request(
        "GET", f"/api/v1/chat/{ids['room_id']}/files", world.alice)
    assert [f["file_id"] for f in files["files"]] == [ids["file_id"]]
    # A viewer reads.
    status, _ = await server.request("GET", f"/api/v1/chat/{ids['room_id']}/messages", world.vera)
    assert status == 200


def every_event(server: Parlour) -> set[str]:
    sio = server.runner.app[SIO]
    namespace = sio.namespace_handlers[REALTIME]
    return set(namespace.events)


def payload_for(event: str, ids: dict[str, str]) -> dict[str, Any]:
    template, _ = EVENTS[event]

    def sub(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("{"):
            return ids[value.strip("{}")]
        if isinstance(value, list):
            return [sub(v) for v in value]
        return value
    return {k: sub(v) for k, v in template.items()}


async def test_the_event_table_is_classified(world: World) -> None:
    events = every_event(world.server)
    missing = events - set(EVENTS) - NO_FOREIGN_IDS
    assert not missing, f"classify these events in EVENTS: {missing}"


async def test_every_event_with_another_users_ids_is_refused(world: World) -> None:
    bob = await world.server.socket(world.bob)
    for event in sorted(set(EVENTS) & every_event(world.server)):
        ack = await bob.call(event, payload_for(event, world.ids))
        if event in IDEMPOTENT:
            assert ack == {"ok": True, "data": {}} or ack["error"]["code"] in REFUSED_CODES
            continue
        assert ack["ok"] is False, (event, ack)
        assert ack["error"]["code"] in REFUSED_CODES, (event, ack)
        assert SECRET not in str(ack), (event, ack)
    # Nothing reached Bob's socket about Alice's room.
    assert SECRET not in str(bob.events)


async def test_a_viewer_cannot_write_over_socketio(world: World) -> None:
    vera = await world.server.socket(world.vera)
    await vera.ok("join_room", {"room_id": world.ids["room_id"]})
    for event, (_, viewer_may) in sorted(EVENTS.items()):
        if viewer_may or event not in every_event(world.server):
            continue
        ack = await vera.call(event, payload_for(event, world.ids))
        assert ack["ok"] is False and ack["error"]["code"] in REFUSED_CODES, (event, ack)
    status, data = await world.server.request(
        "GET", f"/api/v1/chat/{world.ids['room_id']}/messages", world.alice)
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]


async def test_plain_websocket_with_another_users_room_is_refused(world: World) -> None:
    server, room_id = world.server, world.ids["room_id"]
    for user in (world.bob, world.vera):
        url = f"{server.url}/api/v1/ws/chat?session_id={room_id}&token={user.token}"
        async with server.http.get(url) as resp:
            assert resp.status in REFUSED, (user.name, resp.status)
            assert SECRET not in await resp.text()


async def test_a_socket_client_sees_nothing_of_rooms_it_is_not_in(world: World) -> None:
    """Bob connected while Alice's room is busy: no event of hers arrives."""
    bob = await world.server.socket(world.bob)
    other = SocketClient(REALTIME)
    await world.server.connect(other, world.alice)
    await other.ok("join_room", {"room_id": world.ids["room_id"]})
    await other.ok("send_message", {"room_id": world.ids["room_id"],
                                    "content": f"@assistant {SECRET}"})
    await other.wait("assistant_done", timeout=15)
    assert SECRET not in str(bob.events)
