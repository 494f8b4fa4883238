"""Two Parlour nodes sharing MongoDB and Redis behave as one service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider


@pytest.fixture
async def nodes(make_settings: Any, redis_url: str) -> AsyncIterator[tuple[Parlour, Parlour]]:
    provider = ScriptedProvider(deltas=[f"n{i} " for i in range(60)], delay=0.02)
    settings = make_settings(redis__url=redis_url, llm__default_model="scripted:fixed")
    one = await start_parlour(settings, providers={"scripted": provider})
    two = await start_parlour(settings, providers={"scripted": provider})
    yield one, two
    for node in (one, two):
        if node.runner.server is not None:
            await node.close()


async def test_rooms_presence_typing_and_messages_across_nodes(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    alice, bob = await one.signup("Alice"), await one.signup("Bob")
    a, b = await one.socket(alice), await two.socket(bob)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    await b.wait("room_invited")  # delivered to a socket on the other node

    joined = await b.ok("join_room", {"room_id": room_id})
    assert set(joined["online"]) == {alice.user_id, bob.user_id}  # presence from Redis
    (event,) = await a.wait("user_joined")
    assert event["user"]["user_id"] == bob.user_id

    await b.ok("typing", {"room_id": room_id, "is_typing": True})
    await a.wait("user_typing")
    await a.ok("send_message", {"room_id": room_id, "content": "from node one"})
    await b.ok("send_message", {"room_id": room_id, "content": "from node two"})
    got = await a.wait("message_received", count=2)
    assert [m["message"]["seq"] for m in got] == [1, 2]
    await b.wait("message_received", count=2)

    await b.disconnect()
    (left,) = await a.wait("user_left")
    assert left["user"]["user_id"] == bob.user_id


async def test_stop_and_late_join_work_from_the_other_node(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    alice, bob = await one.signup(), await one.signup()
    a = await one.socket(alice)
    room_id = (await a.ok("create_room", {"assistant_mode": "always"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    await a.ok("send_message", {"room_id": room_id, "content": "long answer please"})
    await a.wait("assistant_delta", count=5, timeout=10)

    b = await two.socket(bob)  # the reply runs on node one; bob is on node two
    joined = await b.ok("join_room", {"room_id": room_id})
    active = joined["active_stream"]
    assert active["seq"] >= 5 and active["content"].startswith("n0 ")
    await b.wait("assistant_delta", where=lambda d: d["seq"] > active["seq"], timeout=10)
    stopped = await b.ok("stop_generation", {"room_id": room_id})
    (done,) = await b.wait("assistant_done", timeout=10)
    assert done["finish_reason"] == "cancelled" and done["message_id"] == stopped["message_id"]
    later = [d for d in b.named("assistant_delta") if d["seq"] > active["seq"]]
    assert active["content"] + "".join(d["delta"] for d in later) == done["message"]["content"]
    assert (await a.wait("assistant_done"))[0]["finish_reason"] == "cancelled"
    ack = await b.call("stop_generation", {"room_id": room_id})
    assert ack["error"]["code"] == "not_found"


async def test_a_node_going_away_loses_no_acknowledged_message(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    user = await one.signup()
    s = await one.socket(user)
    room_id = (await s.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    acked = [(await s.ok("send_message", {"room_id": room_id, "content": f"m{i}"}))["message"]
             for i in range(5)]
    seen = acked[1]["seq"]
    await one.close()  # node one goes away; its client reconnects to node two
    s2 = await two.socket(user)
    data = await s2.ok("join_room", {"room_id": room_id, "since_seq": seen})
    assert [m["content"] for m in data["messages"]] == ["m2", "m3", "m4"]


async def test_remove_member_reaches_sockets_on_other_nodes(
    nodes: tuple[Parlour, Parlour],
) -> None:
    one, two = nodes
    owner, guest = await one.signup(), await one.signup()
    o = await one.socket(owner)
    room_id = (await o.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await o.ok("invite", {"room_id": room_id, "email": guest.email})
    g = await two.socket(guest)
    await g.ok("join_room", {"room_id": room_id})
    await o.ok("remove_member", {"room_id": room_id, "user_id": guest.user_id})
    await g.wait("room_deleted")
    await o.ok("send_message", {"room_id": room_id, "content": "secret"})
    await o.wait("message_received")
    contents = [m["message"]["content"] for m in g.named("message_received")]
    assert "secret" not in contents


async def test_presence_forgets_users_of_a_node_that_died(
    nodes: tuple[Parlour, Parlour], redis_url: str
) -> None:
    one, two = nodes
    alice, bob = await one.signup(), await one.signup()
    a = await one.socket(alice)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    b = await two.socket(bob)
    assert set((await b.ok("join_room", {"room_id": room_id}))["online"]) == {
        alice.user_id, bob.user_id}
    # Node one dies without closing its sockets: its heartbeat key lapses.
    client = Redis.from_url(redis_url)
    try:
        assert await client.delete(f"parlour:node:{one.services.node_id}") == 1
    finally:
        await client.aclose()
    b2 = await two.socket(bob)
    assert (await b2.ok("join_room", {"room_id": room_id}))["online"] == [bob.user_id]
    # Alice comes back through node two: she is announced as newly online.
    a2 = await two.socket(alice)
    await a2.ok("join_room", {"room_id": room_id})
    joined = await b.wait("user_joined", where=lambda d: d["user"]["user_id"] == alice.user_id)
    assert joined
