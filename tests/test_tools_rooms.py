"""A room's `tools` setting and GET /api/v1/tools, on a real server with an MCP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.client import Parlour, start_parlour


@pytest.fixture
async def server(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, http_mcp: str
) -> AsyncIterator[Parlour]:
    monkeypatch.delenv("NOTION_TOKEN", raising=False)
    server = await start_parlour(make_settings(tools__mcp={"local": {"url": http_mcp}}))
    yield server
    await server.close()


async def test_tools_lists_builtins_and_mcp_tools_with_their_configured_flag(
    server: Parlour,
) -> None:
    assert (await server.request("GET", "/api/v1/tools"))[0] == 401
    user = await server.signup()
    status, data = await server.request("GET", "/api/v1/tools", user)
    assert status == 200
    tools = {t["name"]: t for t in data["tools"]}
    assert {name: (t["source"], t["configured"]) for name, t in tools.items()} == {
        "search_documents": ("builtin", True),
        "calendar_list_events": ("builtin", False),
        "calendar_create_event": ("builtin", False),
        "notion_search": ("builtin", False),
        "notion_create_page": ("builtin", False),
        "local__add": ("mcp:local", True),
        "local__crash": ("mcp:local", True),
        "local__echo": ("mcp:local", True),
        "local__fail": ("mcp:local", True),
        "local__wait": ("mcp:local", True),
    }
    assert tools["search_documents"]["parameters"]["required"] == ["query"]
    assert tools["local__add"]["description"] == "Add two integers."
    status, spec = await server.request("GET", "/openapi.json")
    assert "/api/v1/tools" in spec["paths"]


async def test_owner_enables_tools_and_members_see_the_room_change(server: Parlour) -> None:
    owner, member = await server.signup(), await server.signup()
    s = await server.socket(owner)
    room = (await s.ok("create_room", {"title": "T", "tools": ["local__add"]}))["room"]
    assert room["tools"] == ["local__add"]
    await s.ok("invite", {"room_id": room["room_id"], "email": member.email})
    m = await server.socket(member)
    await m.ok("join_room", {"room_id": room["room_id"]})

    updated = (await s.ok("update_room", {
        "room_id": room["room_id"], "tools": ["search_documents", "local__echo", "local__echo"],
    }))["room"]
    assert updated["tools"] == ["search_documents", "local__echo"]
    seen = await m.wait("room_updated", where=lambda r: r["room"]["tools"] == updated["tools"])
    assert seen
    status, chat = await server.request("GET", f"/api/v1/chat/{room['room_id']}", owner)
    assert chat["tools"] == ["search_documents", "local__echo"]

    # A member cannot change them; an owner can clear them over REST.
    ack = await m.call("update_room", {"room_id": room["room_id"], "tools": []})
    assert ack["error"]["code"] == "forbidden"
    status, chat = await server.request("PATCH", f"/api/v1/chat/{room['room_id']}", owner,
                                        json={"tools": []})
    assert status == 200 and chat["tools"] == []


REFUSED = [
    (["calendar_list_events"], "calendar_list_events (set tools.google_calendar."
                               "service_account_file)"),
    (["notion_search", "local__add"], "notion_search (set NOTION_TOKEN)"),
    (["no_such_tool"], "unknown tool no_such_tool"),
    (["x" * 65], "tools.0: String should have at most 64 characters"),
]


async def test_enabling_an_unconfigured_or_unknown_tool_is_refused_naming_it(
    server: Parlour,
) -> None:
    owner = await server.signup()
    s = await server.socket(owner)
    room = (await s.ok("create_room", {"title": "T", "tools": ["local__add"]}))["room"]
    for tools, named in REFUSED:
        ack = await s.call("create_room", {"title": "T", "tools": tools})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"
        assert named in ack["error"]["message"], ack
        ack = await s.call("update_room", {"room_id": room["room_id"], "tools": tools})
        assert ack["error"]["code"] == "invalid_payload" and named in ack["error"]["message"]
        status, data = await server.request("PATCH", f"/api/v1/chat/{room['room_id']}", owner,
                                            json={"tools": tools})
        assert status == 422 and data["error"]["code"] == "invalid_payload"
        assert named in data["error"]["message"]
    # Nothing half-made: one room, its tools unchanged.
    status, data = await server.request("GET", "/api/v1/chat", owner)
    assert [c["tools"] for c in data["chats"]] == [["local__add"]]
