"""Rooms of people over real Socket.IO clients: presence, typing, order, replay, limits."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio

from tests.client import Parlour, SocketClient, bad_tokens


async def shared_room(parlour: Parlour) -> tuple[Any, Any, SocketClient, SocketClient, str]:
    alice, bob = await parlour.signup("Alice"), await parlour.signup("Bob")
    a, b = await parlour.socket(alice), await parlour.socket(bob)
    room = (await a.ok("create_room", {"title": "Team"}))["room"]
    await a.ok("invite", {"room_id": room["room_id"], "email": bob.email})
    await b.wait("room_invited")
    return alice, bob, a, b, room["room_id"]


async def test_two_users_chat_with_presence_typing_and_order(parlour: Parlour) -> None:
    alice, bob, a, b, room_id = await shared_room(parlour)
    joined = await b.ok("join_room", {"room_id": room_id})
    assert {m["user_id"] for m in joined["members"]} == {alice.user_id, bob.user_id}
    assert set(joined["online"]) == {alice.user_id, bob.user_id}
    assert joined["room"]["assistant_mode"] == "mention"  # shared rooms default to mention
    (event,) = await a.wait("user_joined")
    assert event == {"room_id": room_id, "user": {"user_id": bob.user_id, "name": "Bob"}}

    # A second tab of Bob's is not a second join.
    b2 = await parlour.socket(bob)
    await b2.ok("join_room", {"room_id": room_id})
    await b2.ok("typing", {"room_id": room_id, "is_typing": True})
    typing = await a.wait("user_typing")
    assert typing[0] == {"room_id": room_id, "user_id": bob.user_id, "is_typing": True}
    assert b2.named("user_typing") == []  # not echoed to the typist
    assert len(a.named("user_joined")) == 1

    for i in range(5):
        await (a if i % 2 == 0 else b).ok("send_message", {"room_id": room_id, "content": f"m{i}"})
    got = await b2.wait("message_received", count=5)
    assert [m["message"]["content"] for m in got] == [f"m{i}" for i in range(5)]
    assert [m["message"]["seq"] for m in got] == [1, 2, 3, 4, 5]
    assert got[0]["message"]["author"] == {"user_id": alice.user_id, "name": "Alice"}

    # Bob's tabs leave: one user_left, after the last one.
    await b2.disconnect()
    await asyncio.sleep(0.2)
    assert a.named("user_left") == []
    await b.disconnect()
    (left,) = await a.wait("user_left")
    assert left["user"]["user_id"] == bob.user_id


async def test_replay_after_disconnect(parlour: Parlour) -> None:
    _, bob, a, b, room_id = await shared_room(parlour)
    await b.ok("join_room", {"room_id": room_id})
    await a.ok("send_message", {"room_id": room_id, "content": "before"})
    await b.wait("message_received")
    last_seen = b.named("message_received")[-1]["message"]["seq"]
    await b.disconnect()
    for i in range(3):
        await a.ok("send_message", {"room_id": room_id, "content": f"missed {i}"})
    b = await parlour.socket(bob)
    data = await b.ok("join_room", {"room_id": room_id, "since_seq": last_seen})
    assert [m["content"] for m in data["messages"]] == ["missed 0", "missed 1", "missed 2"]
    assert [m["seq"] for m in data["messages"]] == [2, 3, 4]


async def test_client_msg_id_retry_is_idempotent(parlour: Parlour) -> None:
    user = await parlour.signup()
    s = await parlour.socket(user)
    room_id = (await s.ok("create_room", {}))["room"]["room_id"]
    payload = {"room_id": room_id, "content": "once", "client_msg_id": "c-1"}
    first = (await s.ok("send_message", payload))["message"]
    again = await asyncio.gather(*(s.ok("send_message", payload) for _ in range(3)))
    assert {r["message"]["message_id"] for r in again} == {first["message_id"]}
    status, data = await parlour.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    assert [m["content"] for m in data["messages"]] == ["once"]
    await asyncio.sleep(0.1)
    assert len(s.named("message_received")) == 1


async def test_a_client_msg_id_is_each_senders_own(parlour: Parlour) -> None:
    """Two members whose clients happen to pick the same client_msg_id both get their
    message stored; each one's retry still returns that sender's first message."""
    alice, bob = await parlour.signup(), await parlour.signup()
    a = await parlour.socket(alice)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    b = await parlour.socket(bob)
    await b.ok("join_room", {"room_id": room_id})
    mine = (await a.ok("send_message", {"room_id": room_id, "content": "from alice",
                                        "client_msg_id": "1"}))["message"]
    theirs = (await b.ok("send_message", {"room_id": room_id, "content": "from bob",
                                           "client_msg_id": "1"}))["message"]
    assert theirs["message_id"] != mine["message_id"]
    assert (theirs["seq"], theirs["content"]) == (2, "from bob")
    again = (await b.ok("send_message", {"room_id": room_id, "content": "from bob",
                                         "client_msg_id": "1"}))["message"]
    assert again["message_id"] == theirs["message_id"]
    status, data = await parlour.request("GET", f"/api/v1/chat/{room_id}/messages", alice)
    assert [m["content"] for m in data["messages"]] == ["from alice", "from bob"]


async def test_concurrent_senders_get_gap_free_seq(parlour: Parlour) -> None:
    owner = await parlour.signup()
    s = await parlour.socket(owner)
    room_id = (await s.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    senders = []
    for _ in range(20):
        user = await parlour.signup()
        await s.ok("invite", {"room_id": room_id, "email": user.email})
        senders.append(await parlour.socket(user))
    acks = await asyncio.gather(
        *(c.ok("send_message", {"room_id": room_id, "content": f"from {i}"})
          for i, c in enumerate(senders))
    )
    seqs = sorted(a["message"]["seq"] for a in acks)
    assert seqs == list(range(1, 21))
    status, data = await parlour.request(
        "GET", f"/api/v1/chat/{room_id}/messages?limit=100", owner
    )
    assert [m["seq"] for m in data["messages"]] == list(range(1, 21))


async def test_bad_payloads_get_stable_codes(parlour: Parlour) -> None:
    user = await parlour.signup()
    s = await parlour.socket(user)
    room_id = (await s.ok("create_room", {}))["room"]["room_id"]

    ack = await s.call("send_message", {"room_id": room_id, "content": "x", "colour": "red"})
    assert ack["error"]["code"] == "invalid_payload" and "colour" in ack["error"]["message"]
    ack = await s.call("send_message", {"room_id": room_id, "content": 42})
    assert ack["error"]["code"] == "invalid_payload" and "content" in ack["error"]["message"]
    ack = await s.call("send_message", {"room_id": room_id, "content": "x" * 16_001})
    assert ack["error"]["code"] == "payload_too_large"
    ack = await s.call("send_message", {"room_id": "nope", "content": "hi"})
    assert ack["error"]["code"] == "not_found"
    ack = await s.call("send_message", "not an object")
    assert ack["error"]["code"] == "invalid_payload"
    ack = await s.call("no_such_event", {})
    assert ack["error"]["code"] == "invalid_payload"
    # Nothing half-written: no message was stored.
    status, data = await parlour.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    assert data["messages"] == []


async def test_error_event_when_no_ack_requested(parlour: Parlour) -> None:
    user = await parlour.signup()
    s = await parlour.socket(user)
    await s.emit("join_room", {"room_id": "missing"})
    (err,) = await s.wait("error")
    assert err == {"code": "not_found", "message": "room not found", "event": "join_room",
                   "room_id": "missing"}


async def test_handler_exception_answers_internal_and_connection_survives(
    parlour: Parlour, caplog: Any
) -> None:
    user = await parlour.signup()
    s = await parlour.socket(user)
    sio = parlour.services.rooms.emitter.transport._sio  # type: ignore[attr-defined]
    realtime = sio.namespace_handlers["/assistant/realtime"]

    async def explode(sid: str, who: Any, payload: Any) -> dict[str, Any]:
        raise RuntimeError("kaboom")

    realtime.handle("explode", explode)
    ack = await s.call("explode", {})
    assert ack == {"ok": False, "error": {"code": "internal", "message": "internal error"}}
    assert any("kaboom" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert (await s.ok("create_room", {}))["room"]["room_id"]


async def test_connect_requires_a_valid_token(parlour: Parlour) -> None:
    for token in bad_tokens(await parlour.signup()):
        client = SocketClient("/assistant/realtime")
        try:
            await parlour.connect(client, None, token=token)
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError("connection with a bad token was accepted")
        assert client.named("connect_error") == [
            {"message": "unauthorized", "data": {"code": "unauthorized"}}
        ]


async def test_private_rooms_are_invisible_and_viewers_read_only(parlour: Parlour) -> None:
    owner, stranger, viewer = [await parlour.signup() for _ in range(3)]
    o = await parlour.socket(owner)
    room_id = (await o.ok("create_room", {}))["room"]["room_id"]
    st = await parlour.socket(stranger)
    for event, payload in (
        ("join_room", {"room_id": room_id}),
        ("send_message", {"room_id": room_id, "content": "hi"}),
        ("update_room", {"room_id": room_id, "title": "mine"}),
    ):
        assert (await st.call(event, payload))["error"]["code"] == "not_found"
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/messages")):
        body = {} if method == "PATCH" else None
        status, data = await parlour.request(
            method, f"/api/v1/chat/{room_id}{path}", stranger, json=body
        )
        assert status == 404 and data["error"]["code"] == "not_found"

    await o.ok("invite", {"room_id": room_id, "email": viewer.email, "role": "viewer"})
    v = await parlour.socket(viewer)
    data = await v.ok("join_room", {"room_id": room_id})
    assert data["room"]["room_id"] == room_id
    ack = await v.call("send_message", {"room_id": room_id, "content": "can I?"})
    assert ack["error"]["code"] == "forbidden"
    ack = await v.call("update_room", {"room_id": room_id, "title": "mine"})
    assert ack["error"]["code"] == "forbidden"


async def test_public_room_and_remove_member(parlour: Parlour) -> None:
    owner, guest = await parlour.signup(), await parlour.signup()
    o = await parlour.socket(owner)
    room_id = (await o.ok("create_room", {"visibility": "public"}))["room"]["room_id"]
    g = await parlour.socket(guest)
    data = await g.ok("join_room", {"room_id": room_id})
    assert guest.user_id in {m["user_id"] for m in data["members"]}
    await g.ok("send_message", {"room_id": room_id, "content": "hello"})

    await o.ok("remove_member", {"room_id": room_id, "user_id": guest.user_id})
    (deleted,) = await g.wait("room_deleted")
    assert deleted == {"room_id": room_id}
    await o.ok("send_message", {"room_id": room_id, "content": "after removal"})
    await asyncio.sleep(0.2)
    contents = [m["message"]["content"] for m in g.named("message_received")]
    assert "after removal" not in contents
    ack = await o.call("remove_member", {"room_id": room_id, "user_id": owner.user_id})
    assert ack["error"]["code"] == "invalid_payload"


async def test_invite_before_signup_becomes_membership(parlour: Parlour) -> None:
    owner = await parlour.signup()
    o = await parlour.socket(owner)
    room_id = (await o.ok("create_room", {}))["room"]["room_id"]
    await o.ok("invite", {"room_id": room_id, "email": "later@example.com"})
    status, data = await parlour.request(
        "POST", "/api/v1/auth/signup",
        json={"email": "later@example.com", "password": "long enough", "name": "Later"},
    )
    assert status == 201
    status, chats = await parlour.request(
        "GET", "/api/v1/chat", headers={"Authorization": f"Bearer {data['access_token']}"}
    )
    assert [c["chat_id"] for c in chats["chats"]] == [room_id]


async def test_update_room_broadcasts(parlour: Parlour) -> None:
    _, _, a, b, room_id = await shared_room(parlour)
    await b.ok("join_room", {"room_id": room_id})
    room = (await a.ok("update_room", {"room_id": room_id, "title": "Renamed",
                                       "assistant_mode": "off"}))["room"]
    assert room["title"] == "Renamed" and room["assistant_mode"] == "off"
    updates = await b.wait("room_updated", where=lambda d: d["room"]["title"] == "Renamed")
    assert updates[0]["room"]["assistant_mode"] == "off"


async def test_default_namespace_receives_user_notifications(parlour: Parlour) -> None:
    owner, guest = await parlour.signup(), await parlour.signup()
    o = await parlour.socket(owner)
    lobby = await parlour.socket(guest, namespace="/")  # joined no room at all
    room_id = (await o.ok("create_room", {}))["room"]["room_id"]
    await o.ok("invite", {"room_id": room_id, "email": guest.email})
    (invited,) = await lobby.wait("room_invited")
    assert invited["room"]["room_id"] == room_id
    ack = await lobby.call("send_message", {"room_id": room_id, "content": "hi"})
    assert ack["error"]["code"] == "invalid_payload"  # room events live on /assistant/realtime
