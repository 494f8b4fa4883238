"""Two Parlour nodes sharing MongoDB and Redis behave as one service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from app.events import room_channel
from app.keys import SIO
from namespaces.server import REALTIME
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


async def test_room_messages_reach_every_socket_once_on_both_nodes(
    nodes: tuple[Parlour, Parlour],
) -> None:
    """Each node delivers its own emits locally and hears only the other's from Redis:
    a node that stopped hearing the other, or also delivered its own echo, fails here."""
    one, two = nodes
    alice, carol, bob = await one.signup(), await one.signup(), await one.signup()
    a, c = await one.socket(alice), await one.socket(carol)
    b = await two.socket(bob)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    for user, sock in ((carol, c), (bob, b)):
        await a.ok("invite", {"room_id": room_id, "email": user.email})
        await sock.ok("join_room", {"room_id": room_id})
    sent = [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)] + ["a-end"]
    for content in sent:
        await (b if content.startswith("b") else a).ok(
            "send_message", {"room_id": room_id, "content": content})
    for sock in (a, b, c):
        await sock.wait("message_received", count=len(sent))
    await asyncio.sleep(0.3)  # an echo delivered twice would land meanwhile
    for sock in (a, b, c):
        got = [m["message"] for m in sock.named("message_received")]
        assert sorted(m["content"] for m in got) == sorted(sent)
        assert sorted(m["seq"] for m in got) == list(range(1, len(sent) + 1))


async def test_acks_and_binary_events_cross_nodes(nodes: tuple[Parlour, Parlour]) -> None:
    """The manager's other paths: an emit with a callback answered on the other node, and
    binary data (assistant_audio) split into attachments on the way through Redis."""
    one, two = nodes
    alice, bob = await one.signup(), await one.signup()
    a, b = await one.socket(alice), await two.socket(bob)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    await b.ok("join_room", {"room_id": room_id})
    sio = one.runner.app[SIO]
    acked: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
    await sio.emit("probe", {"n": 1}, to=b.sio.get_sid(REALTIME), namespace=REALTIME,
                   callback=lambda *args: acked.set_result(args))
    assert await asyncio.wait_for(acked, 5) == ()  # the test client acks with nothing
    assert b.named("probe") == [{"n": 1}]
    audio = {"room_id": room_id, "chunk": b"\x00\x01\xfe\xff"}
    await sio.emit("assistant_audio", audio, to=room_channel(room_id), namespace=REALTIME)
    for sock in (a, b):
        assert (await sock.wait("assistant_audio"))[0]["chunk"] == audio["chunk"]


async def test_a_burst_of_emits_reaches_the_other_node_whole_and_in_order(
    nodes: tuple[Parlour, Parlour],
) -> None:
    """300 emits at once (more than redis-py's pool of 100 connections, which one
    connection per concurrent publish would exhaust): one publisher, in emit order."""
    one, two = nodes
    alice, bob = await one.signup(), await one.signup()
    a, b = await one.socket(alice), await two.socket(bob)
    room_id = (await a.ok("create_room", {"assistant_mode": "off"}))["room"]["room_id"]
    await a.ok("invite", {"room_id": room_id, "email": bob.email})
    await b.ok("join_room", {"room_id": room_id})
    sio = one.runner.app[SIO]
    await asyncio.gather(*(sio.emit("probe", {"n": n}, to=room_channel(room_id),
                                    namespace=REALTIME) for n in range(300)))
    for sock in (a, b):
        got = await sock.wait("probe", count=300)
        assert [d["n"] for d in got] == list(range(300))
