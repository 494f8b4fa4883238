"""Managing members from the client: change a role, leave for good, find public rooms."""

from __future__ import annotations

from tests.client import Parlour
from tests.test_rooms import shared_room


async def test_owner_changes_a_members_role(parlour: Parlour) -> None:
    alice, bob, a, b, room_id = await shared_room(parlour)
    await b.ok("join_room", {"room_id": room_id})
    data = await a.ok("update_member", {"room_id": room_id, "user_id": bob.user_id,
                                        "role": "viewer"})
    roles = {m["user_id"]: m["role"] for m in data["room"]["members"]}
    assert roles == {alice.user_id: "owner", bob.user_id: "viewer"}
    updated = await b.wait("room_updated", where=lambda d: any(
        m["role"] == "viewer" for m in d["room"]["members"]))
    assert updated[0]["room"]["room_id"] == room_id
    ack = await b.call("send_message", {"room_id": room_id, "content": "still here?"})
    assert ack["error"]["code"] == "forbidden"

    # Only the owner changes roles; the owner's own role is fixed; strangers are not found.
    ack = await b.call("update_member", {"room_id": room_id, "user_id": bob.user_id,
                                         "role": "member"})
    assert ack["error"]["code"] == "forbidden"
    ack = await a.call("update_member", {"room_id": room_id, "user_id": alice.user_id,
                                         "role": "viewer"})
    assert ack["error"]["code"] == "invalid_payload"
    carol = await parlour.signup()
    ack = await a.call("update_member", {"room_id": room_id, "user_id": carol.user_id,
                                         "role": "viewer"})
    assert ack["error"]["code"] == "not_found"
    ack = await a.call("update_member", {"room_id": room_id, "user_id": bob.user_id,
                                         "role": "owner"})
    assert ack["error"]["code"] == "invalid_payload"

    await a.ok("update_member", {"room_id": room_id, "user_id": bob.user_id, "role": "member"})
    await b.ok("send_message", {"room_id": room_id, "content": "back"})


async def test_a_member_leaves_for_good(parlour: Parlour) -> None:
    alice, bob, a, b, room_id = await shared_room(parlour)
    await b.ok("join_room", {"room_id": room_id})
    data = await b.ok("remove_member", {"room_id": room_id, "user_id": bob.user_id})
    assert [m["user_id"] for m in data["room"]["members"]] == [alice.user_id]
    assert await b.wait("room_deleted") == [{"room_id": room_id}]
    left = await a.wait("user_left")
    assert left[0]["user"]["user_id"] == bob.user_id
    status, chats = await parlour.request("GET", "/api/v1/chat", bob)
    assert status == 200 and chats["chats"] == []
    ack = await b.call("send_message", {"room_id": room_id, "content": "ghost"})
    assert ack["error"]["code"] == "not_found"
    # A member cannot remove someone else; the owner cannot leave (delete the room instead).
    carol = await parlour.signup()
    await a.ok("invite", {"room_id": room_id, "email": carol.email})
    c = await parlour.socket(carol)
    ack = await c.call("remove_member", {"room_id": room_id, "user_id": alice.user_id})
    assert ack["error"]["code"] == "forbidden"
    ack = await a.call("remove_member", {"room_id": room_id, "user_id": alice.user_id})
    assert ack["error"]["code"] == "invalid_payload"


async def test_public_rooms_are_listed_for_everyone(parlour: Parlour) -> None:
    owner, other = await parlour.signup(), await parlour.signup()
    o = await parlour.socket(owner)
    public = []
    for i in range(3):
        room = (await o.ok("create_room", {"title": f"Open {i}", "visibility": "public"}))
        public.append(room["room"]["room_id"])
    await o.ok("create_room", {"title": "Secret"})
    status, page = await parlour.request("GET", "/api/v1/chat/public?limit=2", other)
    assert status == 200 and len(page["chats"]) == 2 and page["next_cursor"]
    status, rest = await parlour.request(
        "GET", f"/api/v1/chat/public?limit=2&cursor={page['next_cursor']}", other
    )
    assert status == 200 and rest["next_cursor"] is None
    listed = [c["chat_id"] for c in page["chats"] + rest["chats"]]
    assert sorted(listed) == sorted(public)
    assert all(c["visibility"] == "public" for c in page["chats"])
    status, _ = await parlour.request(
        "GET", "/api/v1/chat/public", headers={"Authorization": "Bearer not-a-token"}
    )
    assert status == 401
    status, bad = await parlour.request("GET", "/api/v1/chat/public?cursor=%%%", other)
    assert status in (400, 422) and bad["error"]["code"] == "invalid_payload"
