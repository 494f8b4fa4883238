"""Tools in replies, end to end: a shared room, the calendar tool, MCP, stop, round limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.llm.base import ToolCall
from tests.client import Parlour, SocketClient, User, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.tool_stubs import FakeGoogle, serve


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider(delay=0.01)


@pytest.fixture
async def google(tmp_path: Path) -> AsyncIterator[tuple[FakeGoogle, Path]]:
    fake = FakeGoogle()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake, fake.key_file(tmp_path)


@pytest.fixture
async def server(
    make_settings: Any, scripted: ScriptedProvider, google: tuple[FakeGoogle, Path],
    http_mcp: str,
) -> AsyncIterator[Parlour]:
    fake, key_file = google
    settings = make_settings(
        assistant__delta_interval_ms=0,
        tools__max_rounds=2,
        tools__google_calendar={"service_account_file": str(key_file),
                                "api_base_url": fake.url, "calendar_id": "team@example.com"},
        tools__mcp={"local": {"url": http_mcp}},
    )
    server = await start_parlour(settings, providers={"scripted": scripted})
    yield server
    await server.close()


@dataclass
class Team:
    owner: User
    member: User
    o: SocketClient
    m: SocketClient
    room_id: str


async def shared_room(server: Parlour, tools: list[str]) -> Team:
    """A room owned by Olive with Max as a member, both joined, with `tools` enabled."""
    owner, member = await server.signup("Olive"), await server.signup("Max")
    o = await server.socket(owner)
    room = (await o.ok("create_room", {"title": "Team", "model": "scripted:tools"}))["room"]
    await o.ok("invite", {"room_id": room["room_id"], "email": member.email})
    m = await server.socket(member)
    await m.ok("join_room", {"room_id": room["room_id"]})
    await o.ok("update_room", {"room_id": room["room_id"], "tools": tools})
    return Team(owner, member, o, m, room["room_id"])


async def test_owner_enables_the_calendar_and_a_member_asks_about_tomorrow(
    server: Parlour, scripted: ScriptedProvider, google: tuple[FakeGoogle, Path],
) -> None:
    fake, _ = google
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    nine = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=UTC)
    fake.events.append({"id": "e1", "summary": "Dentist at 9",
                        "start": {"dateTime": nine.isoformat()},
                        "end": {"dateTime": (nine + timedelta(hours=1)).isoformat()}})
    team = await shared_room(server, ["calendar_list_events"])
    o, m, room_id = team.o, team.m, team.room_id
    arguments = json.dumps({"time_min": tomorrow.isoformat(),
                            "time_max": (tomorrow + timedelta(days=1)).isoformat()})
    scripted.tool_script = [(ToolCall("call_cal", "calendar_list_events", arguments),)]

    await m.ok("send_message", {"room_id": room_id,
                                "content": "@assistant what's on my calendar tomorrow?"})
    done = [(await c.wait("assistant_done", timeout=30))[0] for c in (o, m)]
    assert done[0] == done[1]
    message = done[0]["message"]
    assert done[0]["finish_reason"] == "stop" and message["status"] == "complete"
    assert "Dentist at 9" in message["content"]  # the answer uses the tool's result

    for client in (o, m):  # every member saw the call run
        calls = client.named("assistant_tool_call")
        assert [(c["name"], c["status"]) for c in calls] == [
            ("calendar_list_events", "running"), ("calendar_list_events", "done")]
        assert {c["call_id"] for c in calls} == {"call_cal"}
        assert all(c["room_id"] == room_id and c["message_id"] == message["message_id"]
                   for c in calls)
        assert json.loads(calls[0]["arguments"]) == json.loads(arguments)
        assert "Dentist at 9" in calls[1]["result"]
    # The model was offered the room's tool; the token came from the key file's token_uri.
    assert [t.name for t in scripted.params[0].tools] == ["calendar_list_events"]
    assert len(fake.token_requests) == 1

    status, history = await server.request("GET", f"/api/v1/chat/{room_id}/messages",
                                           team.member)
    stored = history["messages"][-1]
    assert stored["message_id"] == message["message_id"]
    assert [(c["call_id"], c["name"], c["status"]) for c in stored["tool_calls"]] == [
        ("call_cal", "calendar_list_events", "done")]
    assert "Dentist at 9" in stored["tool_calls"][0]["result"]


async def test_a_failing_api_and_a_disabled_tool_are_error_results_and_the_reply_goes_on(
    server: Parlour, scripted: ScriptedProvider, google: tuple[FakeGoogle, Path],
) -> None:
    fake, _ = google
    fake.fail_status = 503
    team = await shared_room(server, ["calendar_list_events"])
    o, room_id = team.o, team.room_id
    scripted.tool_script = [(ToolCall("c1", "calendar_list_events", "{}"),
                             ToolCall("c2", "local__add", '{"a": 1, "b": 2}'))]
    await o.ok("send_message", {"room_id": room_id, "content": "@assistant check"})
    done = (await o.wait("assistant_done", timeout=30))[0]
    assert done["finish_reason"] == "stop"
    calls = {c["call_id"]: c for c in done["message"]["tool_calls"]}
    assert calls["c1"]["status"] == "error" and "503" in calls["c1"]["result"]
    assert calls["c2"]["status"] == "error" and "not enabled" in calls["c2"]["result"]
    assert "503" in done["message"]["content"]


async def test_stop_during_a_tool_call_cancels_it_within_a_second(
    server: Parlour, scripted: ScriptedProvider,
) -> None:
    team = await shared_room(server, ["local__wait"])
    o, m, room_id = team.o, team.m, team.room_id
    scripted.tool_script = [(ToolCall("c1", "local__wait", '{"seconds": 15}'),)]
    await o.ok("send_message", {"room_id": room_id, "content": "@assistant wait"})
    running = await m.wait("assistant_tool_call", timeout=30)
    stopped = time.monotonic()
    await m.ok("stop_generation", {"room_id": room_id})
    done = (await o.wait("assistant_done", timeout=5))[0]
    assert time.monotonic() - stopped < 1.0
    assert done["finish_reason"] == "cancelled" and done["message"]["status"] == "cancelled"
    assert running[0]["status"] == "running"
    # The room can be asked again at once (nothing left running).
    scripted.tool_script = []
    await o.ok("send_message", {"room_id": room_id, "content": "@assistant again"})
    await o.wait("assistant_done", count=2, timeout=30)
    await asyncio.sleep(0)


async def test_more_rounds_than_max_rounds_end_the_reply_and_say_so(
    server: Parlour, scripted: ScriptedProvider,
) -> None:
    team = await shared_room(server, ["local__add"])
    o, room_id = team.o, team.room_id
    scripted.tool_script = [(ToolCall(f"c{i}", "local__add", '{"a": 1, "b": 1}'),)
                            for i in range(4)]
    await o.ok("send_message", {"room_id": room_id, "content": "@assistant loop"})
    done = (await o.wait("assistant_done", timeout=30))[0]
    message = done["message"]
    assert done["finish_reason"] == "stop"
    assert "limit of 2 tool rounds" in message["content"]
    assert [c["status"] for c in message["tool_calls"]] == ["done", "done"]
