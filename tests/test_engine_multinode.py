"""The reply engine across nodes: per-message stream log, and Redis going away mid-reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.client import Parlour, SocketClient, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.servers import start_redis, stop, wait_for


async def two_nodes(settings: Any, provider: ScriptedProvider) -> tuple[Parlour, Parlour]:
    one = await start_parlour(settings, providers={"scripted": provider})
    two = await start_parlour(settings, providers={"scripted": provider})
    return one, two


async def test_two_replies_in_one_room_on_two_nodes_do_not_interleave(
    make_settings: Any, redis_url: str
) -> None:
    provider = ScriptedProvider(delay=0.03)
    one, two = await two_nodes(make_settings(redis__url=redis_url), provider)
    try:
        alice, bob, carol = await one.signup(), await one.signup(), await one.signup()
        a = await one.socket(alice)
        room = (await a.ok("create_room", {"model": "scripted:echo", "assistant_mode": "always"}))
        room_id = room["room"]["room_id"]
        for guest in (bob, carol):
            await a.ok("invite", {"room_id": room_id, "email": guest.email})
        b = await two.socket(bob)
        await b.ok("join_room", {"room_id": room_id})
        # One question on each node at once: each node runs its own reply.
        await asyncio.gather(
            a.ok("send_message", {"room_id": room_id, "content": " ".join(["alpha"] * 40)}),
            b.ok("send_message", {"room_id": room_id, "content": " ".join(["beta"] * 40)}),
        )
        await both_streaming(a)
        c = await two.socket(carol)
        joined = await c.ok("join_room", {"room_id": room_id})
        streams = joined["active_streams"]
        assert len(streams) == 2 and joined["active_stream"] == streams[0]
        # Echoed questions ("<name>: alpha alpha ..."): each reply holds only its own words.
        words = [{w for w in s["content"].split() if not w.endswith(":")} for s in streams]
        assert sorted(map(sorted, words)) == [["alpha"], ["beta"]]  # each its own text
        done = await c.wait("assistant_done", count=2, timeout=15)
        for entry in streams:
            final = next(d for d in done if d["message_id"] == entry["message_id"])
            later = [d for d in c.named("assistant_delta")
                     if d["message_id"] == entry["message_id"] and d["seq"] > entry["seq"]]
            seqs = [d["seq"] for d in later]
            assert seqs == list(range(entry["seq"] + 1, entry["seq"] + 1 + len(seqs)))
            assert entry["content"] + "".join(d["delta"] for d in later) == \
                final["message"]["content"]
        for node in (one, two):
            assert await node.services.engine.active_streams(room_id) == []
    finally:
        await one.close()
        await two.close()


async def both_streaming(client: SocketClient) -> None:
    """Until two replies have each sent a few deltas."""
    def counts() -> list[int]:
        per: dict[str, int] = {}
        for d in client.named("assistant_delta"):
            per[d["message_id"]] = per.get(d["message_id"], 0) + 1
        return sorted(per.values())

    for _ in range(500):
        found = counts()
        if len(found) == 2 and found[0] >= 3:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"two replies did not stream at once: {counts()}")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A redis-server only this test uses (it gets killed and restarted)."""
    proc, port = start_redis(tmp_path)
    state: dict[str, Any] = {"proc": proc, "port": port, "dir": tmp_path}
    yield state
    stop(state["proc"])


async def wait_status(node: Parlour, message_id: str, timeout: float = 30) -> str:
    """The message's status once it is no longer `streaming`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        doc = await node.services.mongo.messages.find_one({"_id": message_id})
        if doc is not None and doc["status"] != "streaming":
            return str(doc["status"])
        await asyncio.sleep(0.1)
    raise AssertionError("the reply is still streaming")


async def stop_until_done(client: SocketClient, room_id: str) -> dict[str, Any]:
    """Press stop (again, while the other node reconnects) until the reply ends."""
    for _ in range(40):
        await client.call("stop_generation", {"room_id": room_id})
        try:
            done: dict[str, Any] = (await client.wait("assistant_done", timeout=0.5))[0]
            return done
        except TimeoutError:
            continue
    raise AssertionError("stop never took effect")


async def test_redis_restart_mid_reply_leaves_no_phantom_and_stop_works_again(
    make_settings: Any, own_redis: dict[str, Any]
) -> None:
    provider = ScriptedProvider(deltas=[f"n{i} " for i in range(200)], delay=0.02)
    url = f"redis://127.0.0.1:{own_redis['port']}/0"
    one, two = await two_nodes(make_settings(redis__url=url), provider)
    try:
        alice, bob = await one.signup(), await one.signup()
        a = await one.socket(alice)
        room_id = (await a.ok("create_room", {"model": "scripted:fixed",
                                              "assistant_mode": "always"}))["room"]["room_id"]
        await a.ok("invite", {"room_id": room_id, "email": bob.email})
        first = (await a.ok("send_message", {"room_id": room_id, "content": "go"}))["message"]
        (started,) = await a.wait("assistant_started", timeout=10)
        await a.wait("assistant_delta", count=3, timeout=10)

        own_redis["proc"].kill()
        own_redis["proc"].wait()
        # Longer than a Redis command retries (~0.6 s): the reply cannot log its deltas.
        await asyncio.sleep(1.5)
        own_redis["proc"], _ = start_redis(own_redis["dir"], own_redis["port"])

        # The reply ended with an error, its text kept; no phantom anywhere.
        assert await wait_status(one, started["message_id"]) == "error"
        doc = await one.services.mongo.messages.find_one({"_id": started["message_id"]})
        assert doc is not None and doc["content"].startswith("n0 n1 n2 ")
        assert first["message_id"] == started["reply_to"]
        for node in (one, two):
            assert await node.services.engine.active_streams(room_id) == []
        # Its room place and running slot come back once it has told the room (the
        # room events wait for Redis too).
        gate = one.services.engine.gate
        await wait_for(lambda: gate.pending(room_id) == 0 and gate.running(alice.user_id) == 0,
                       timeout=20)

        # Stop works again from the other node: node one hears it over Redis.
        b = await two.socket(bob)
        joined = await b.ok("join_room", {"room_id": room_id})
        assert "active_stream" not in joined
        await a.ok("send_message", {"room_id": room_id, "content": "again"})
        again = await wait_started(one, room_id, exclude=started["message_id"])
        done = await stop_until_done(b, room_id)
        assert done["message_id"] == again and done["finish_reason"] == "cancelled"
        assert await wait_status(one, again) == "cancelled"
    finally:
        await one.close()
        await two.close()


async def wait_started(node: Parlour, room_id: str, exclude: str) -> str:
    """The id of the next reply streaming in the room (read from MongoDB)."""
    for _ in range(200):
        doc = await node.services.mongo.messages.find_one(
            {"room_id": room_id, "role": "assistant", "status": "streaming",
             "_id": {"$ne": exclude}})
        if doc is not None:
            return str(doc["_id"])
        await asyncio.sleep(0.05)
    raise AssertionError("no reply started")
