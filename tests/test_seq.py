"""Message seq stays gap-free and duplicate-free when two nodes write one room at once,
and what one node changes about a room holds on the other at once (its room cache)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.client import Parlour, SocketClient, start_parlour


@pytest.fixture
async def nodes(make_settings: Any, redis_url: str) -> AsyncIterator[tuple[Parlour, Parlour]]:
    settings = make_settings(redis__url=redis_url, limits__messages_per_minute=10_000)
    one = await start_parlour(settings)
    two = await start_parlour(settings)
    yield one, two
    await one.close()
    await two.close()


async def _send_many(client: SocketClient, room_id: str, prefix: str, n: int) -> list[int]:
    async def one(i: int) -> int:
        data = await client.ok("send_message", {"room_id": room_id, "content": f"{prefix}{i}"})
        return int(data["message"]["seq"])
    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_two_nodes_writing_one_room_give_every_message_its_own_seq(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    alice, bob = await one.signup(), await one.signup()
    a, b = await one.socket(alice), await two.socket(bob)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    await b.ok("join_room", {"room_id": room_id})

    for burst in range(3):  # the nodes learn each other's seqs by colliding, every time
        from_a, from_b = await asyncio.gather(
            _send_many(a, room_id, f"a{burst}-", 25), _send_many(b, room_id, f"b{burst}-", 25)
        )
        seqs = sorted(from_a + from_b)
        assert seqs == list(range(burst * 50 + 1, burst * 50 + 51))

    status, page = await one.request(
        "GET", f"/api/v1/chat/{room_id}/messages?limit=200", alice)
    assert status == 200, page
    stored = [m["seq"] for m in page["messages"]]
    assert stored == list(range(1, 151))
    assert len({m["content"] for m in page["messages"]}) == 150
    # The room shows its last seq on either node (another node's writes follow within
    # a second: storage/seq.py ROOMS_DELAY).
    for node in (one, two):
        for _ in range(40):
            status, chat = await node.request("GET", f"/api/v1/chat/{room_id}", alice)
            assert status == 200, chat
            if chat["last_seq"] == 150:
                break
            await asyncio.sleep(0.05)
        assert chat["last_seq"] == 150, chat


async def test_a_retry_on_the_other_node_returns_the_first_message(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    alice = await one.signup()
    a1, a2 = await one.socket(alice), await two.socket(alice)
    room_id = (await a1.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    payload = {"room_id": room_id, "content": "once", "client_msg_id": "c-1"}
    first = (await a1.ok("send_message", payload))["message"]
    again = (await a2.ok("send_message", payload))["message"]
    assert again["message_id"] == first["message_id"] and again["seq"] == first["seq"] == 1
    after = (await a2.ok("send_message", {"room_id": room_id, "content": "next"}))["message"]
    assert after["seq"] == 2  # the retry took no seq


async def test_a_role_or_membership_change_on_one_node_holds_on_the_other(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    alice, bob = await one.signup(), await one.signup()
    a, b = await one.socket(alice), await two.socket(bob)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    await b.ok("join_room", {"room_id": room_id})
    await b.ok("send_message", {"room_id": room_id, "content": "cached on node two"})

    # Bob hears of his new role (room_updated, through Redis); node two, told of the
    # change on the control bus before that event was sent, holds it from then on.
    def role_is(role: str) -> Any:
        return lambda d: any(m["user_id"] == bob.user_id and m["role"] == role
                             for m in d["room"]["members"])

    await a.ok("update_member", {"room_id": room_id, "user_id": bob.user_id, "role": "viewer"})
    await b.wait("room_updated", where=role_is("viewer"))
    ack = await b.call("send_message", {"room_id": room_id, "content": "as a viewer"})
    assert ack["error"]["code"] == "forbidden", ack

    await a.ok("update_member", {"room_id": room_id, "user_id": bob.user_id, "role": "member"})
    await b.wait("room_updated", where=role_is("member"))
    await b.ok("send_message", {"room_id": room_id, "content": "a member again"})

    await a.ok("remove_member", {"room_id": room_id, "user_id": bob.user_id})
    await b.wait("room_deleted")  # told he is out of the room
    ack = await b.call("send_message", {"room_id": room_id, "content": "removed"})
    assert ack["error"]["code"] == "not_found", ack

    status, _ = await one.request("DELETE", f"/api/v1/chat/{room_id}", alice)
    assert status in (200, 204)
    ack = await a.call("send_message", {"room_id": room_id, "content": "gone"})
    assert ack["error"]["code"] == "not_found", ack
