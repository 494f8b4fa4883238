"""Chats over REST: the same rooms as the socket events, paged, owned, cascaded."""

from __future__ import annotations

from tests.client import Parlour


async def test_chat_crud_and_cascade(parlour: Parlour) -> None:
    user = await parlour.signup()
    status, chat = await parlour.request("POST", "/api/v1/chat", user, json={"title": "Notes"})
    assert status == 201 and chat["chat_id"] == chat["room_id"] and chat["title"] == "Notes"
    assert chat["assistant_mode"] == "always"  # a one-member room answers every message
    chat_id = chat["chat_id"]

    s = await parlour.socket(user)
    await s.ok("join_room", {"room_id": chat_id})
    for i in range(7):
        await s.ok("send_message", {"room_id": chat_id, "content": f"n{i}"})

    status, page = await parlour.request(
        "GET", f"/api/v1/chat/{chat_id}/messages?limit=3", user
    )
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7]
    status, page = await parlour.request(
        "GET", f"/api/v1/chat/{chat_id}/messages?before_seq=5&limit=3", user
    )
    assert [m["seq"] for m in page["messages"]] == [2, 3, 4]
    status, page = await parlour.request(
        "GET", f"/api/v1/chat/{chat_id}/messages?after_seq=5", user
    )
    assert [m["content"] for m in page["messages"]] == ["n5", "n6"]

    status, patched = await parlour.request(
        "PATCH", f"/api/v1/chat/{chat_id}", user, json={"title": "Renamed", "assistant_mode": "off"}
    )
    assert status == 200 and patched["title"] == "Renamed" and patched["assistant_mode"] == "off"
    (update,) = await s.wait("room_updated")
    assert update["room"]["title"] == "Renamed"

    status, _ = await parlour.request("DELETE", f"/api/v1/chat/{chat_id}", user)
    assert status == 204
    await s.wait("room_deleted")
    status, _ = await parlour.request("GET", f"/api/v1/chat/{chat_id}", user)
    assert status == 404
    left = await parlour.services.mongo.messages.count_documents({"room_id": chat_id})
    assert left == 0


async def test_list_is_paged_by_latest_activity(parlour: Parlour) -> None:
    user = await parlour.signup()
    ids = []
    for i in range(5):
        status, chat = await parlour.request("POST", "/api/v1/chat", user, json={"title": f"c{i}"})
        ids.append(chat["chat_id"])
    # Activity in the oldest chat moves it to the top.
    s = await parlour.socket(user)
    await s.ok("send_message", {"room_id": ids[0], "content": "bump"})

    seen: list[str] = []
    cursor = None
    while True:
        path = "/api/v1/chat?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await parlour.request("GET", path, user)
        assert status == 200
        seen += [c["chat_id"] for c in page["chats"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[0], ids[4], ids[3], ids[2], ids[1]]

    status, data = await parlour.request("GET", "/api/v1/chat?cursor=%%%", user)
    assert status == 422 and data["error"]["code"] == "invalid_payload"
    status, data = await parlour.request("GET", "/api/v1/chat?limit=0", user)
    assert status == 422 and "limit" in data["error"]["message"]


async def test_other_users_never_see_a_chat(parlour: Parlour) -> None:
    owner, other = await parlour.signup(), await parlour.signup()
    status, chat = await parlour.request("POST", "/api/v1/chat", owner, json={})
    status, listing = await parlour.request("GET", "/api/v1/chat", other)
    assert listing["chats"] == []
    status, data = await parlour.request(
        "PATCH", f"/api/v1/chat/{chat['chat_id']}", other, json={"title": "x"}
    )
    assert status == 404 and data == {"error": {"code": "not_found", "message": "room not found"}}
    status, data = await parlour.request("GET", "/api/v1/chat/does-not-exist", other)
    assert status == 404 and data["error"]["message"] == "room not found"


async def test_unauthenticated_and_unknown_routes(parlour: Parlour) -> None:
    status, data = await parlour.request("GET", "/api/v1/chat")
    assert status == 401 and data["error"]["code"] == "unauthorized"
    status, data = await parlour.request("GET", "/api/v1/nothing-here")
    assert status == 404 and data["error"]["code"] == "not_found"


async def test_health_and_metrics(parlour: Parlour) -> None:
    status, health = await parlour.request("GET", "/internal/health")
    # No LLM provider in this configuration: serving, but degraded, and it says why.
    assert status == 200 and health["status"] == "degraded"
    assert health["checks"]["llm"]["ok"] is False
    assert "no LLM provider" in health["checks"]["llm"]["detail"]
    assert health["checks"]["mongo"]["ok"] is True and health["node_id"]
    user = await parlour.signup()
    s = await parlour.socket(user)
    await s.ok("create_room", {})
    async with parlour.http.get(parlour.url + "/internal/metrics") as resp:
        text = await resp.text()
    assert 'parlour_events_total{event="create_room",outcome="ok"} 1.0' in text
    assert 'parlour_connections{namespace="/assistant/realtime"} 1.0' in text
