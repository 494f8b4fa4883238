"""Bad input and faults in the browser: refused actions leave the page as it was, with the
server's sentence next to the control; events for unknown rooms never throw; a reconnect
during an upload ends on the upload's true state.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from playwright.async_api import WebSocketRoute, expect

from app.events import user_channel
from tests.client import Parlour
from tests.test_web_manage import choose_files, rest
from tests.web_fixtures import create_room, needs_chromium, send, sign_up, user_id

pytestmark = needs_chromium


async def test_refused_settings_change_shows_the_servers_sentence(
    web_server: Parlour, new_page: Any
) -> None:
    page = await new_page()
    await sign_up(page, web_server, "Vera")
    room_id = await create_room(page, "Mine, for now")
    await page.get_by_role("button", name="Settings", exact=True).click()
    # Meanwhile the room stops being hers, and no event tells this page.
    await web_server.services.mongo.rooms.update_one(
        {"_id": room_id}, {"$set": {"members.0.role": "member"}})
    await page.locator("#settings-form").get_by_label("Title").fill("Taken over")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.locator("#settings-error")).to_have_text("Only the room owner can do this.")
    await expect(page.locator(f'#room-list a[data-room-id="{room_id}"]')).to_have_text("Mine, for now")
    await expect(page.get_by_label("Room title")).to_have_value("Mine, for now")
    assert (await rest(page, web_server, f"/api/v1/chat/{room_id}"))["title"] == "Mine, for now"


async def test_too_big_uploads_show_the_servers_sentence(web_server: Parlour, new_page: Any) -> None:
    page = await new_page()
    await sign_up(page, web_server, "Walt")
    room_id = await create_room(page, "Big files")
    big = b"x" * 40_000  # the module's server takes 20 KB at most
    await choose_files(page, "Upload", [("big.txt", big)])
    await expect(page.locator("#upload-error")).to_have_text(
        "big.txt: larger than 0.02 MB.")
    await expect(page.get_by_role("list", name="Uploads").get_by_role("listitem")).to_have_attribute(
        "data-phase", "failed")
    await page.get_by_role("button", name="Files", exact=True).click()
    await expect(page.locator("#room-panel")).to_contain_text("No files in this room yet")
    assert (await rest(page, web_server, f"/api/v1/chat/{room_id}/files"))["files"] == []

    await page.get_by_role("link", name="Documents").click()
    await expect(page.locator("#documents-empty")).to_be_visible()
    await choose_files(page, "Upload documents", [("big.txt", big)])
    await expect(page.locator("#documents-error")).to_have_text(
        "big.txt: larger than 0.02 MB.")
    await expect(page.get_by_role("list", name="Your documents").get_by_role("listitem")).to_have_count(0)
    assert (await rest(page, web_server, "/api/v1/documents"))["documents"] == []


async def test_events_for_rooms_the_page_has_not_loaded_never_throw(
    web_server: Parlour, new_page: Any
) -> None:
    page = await new_page()
    await sign_up(page, web_server, "Xena")
    room_id = await create_room(page, "Real room")
    uid = await user_id(page, web_server)
    ghost = "no-such-room"
    message = {"message_id": "m-ghost", "room_id": ghost, "seq": 1, "role": "user",
               "author": {"user_id": "u", "name": "U"}, "content": "boo", "file_ids": [],
               "reply_to": None, "status": "complete", "created_at": "2025-01-01T00:00:00Z"}
    events: list[tuple[str, Any]] = [
        ("room_updated", {"room": {"room_id": ghost, "title": "ghost"}}),
        ("room_deleted", {"room_id": ghost}),
        ("room_joined", {"room": None}),
        ("user_joined", {"room_id": ghost, "user": {"user_id": "u", "name": "U"}}),
        ("user_left", {"room_id": ghost, "user": {"user_id": "u", "name": "U"}}),
        ("user_typing", {"room_id": ghost, "user_id": "u", "is_typing": True}),
        ("message_received", {"message": message}),
        ("assistant_started", {"room_id": ghost, "message_id": "a", "reply_to": None, "model": "m"}),
        ("assistant_delta", {"room_id": ghost, "message_id": "a", "seq": 1, "delta": "x"}),
        ("assistant_tool_call", {"room_id": ghost, "message_id": "a", "call_id": "c",
                                 "name": "t", "arguments": "{}", "status": "running"}),
        ("assistant_tool_call", {"room_id": room_id, "message_id": "ghost", "call_id": "c",
                                 "name": "t", "arguments": "{}", "status": "done"}),
        ("assistant_done", {"room_id": ghost, "message_id": "a", "finish_reason": "stop",
                            "message": {**message, "message_id": "a", "role": "assistant"}}),
        ("document_status", {"document_id": "nope", "status": "ready", "progress": 1}),
        ("message_received", {}),
        ("assistant_delta", ["not", "an", "object"]),
    ]
    transport = web_server.services.rooms.emitter.transport
    for name, payload in events:
        await transport.emit(name, payload, to=user_channel(uid), all_namespaces=True)
    await send(page, "still working?")  # the page lives on (new_page fails on any page error)
    await expect(page.locator('#message-list li[data-role="user"]')).to_have_text(
        [re.compile("still working")])
    await expect(page.locator("#room-list li")).to_have_count(1)
    assert page.url.endswith(f"#/room/{room_id}")


async def test_a_reconnect_during_an_upload_shows_its_true_final_state(
    web_server: Parlour, new_page: Any
) -> None:
    page = await new_page()
    routes: list[WebSocketRoute] = []
    blocked = asyncio.Event()

    def through(ws: WebSocketRoute) -> None:
        if blocked.is_set():
            # The network is down: the socket opens but nothing gets through, then it drops.
            ws.connect_to_server().on_message(lambda message: None)
            ws.on_message(lambda message: None)
            asyncio.get_running_loop().call_later(0.2, lambda: asyncio.ensure_future(ws.close()))
            return
        ws.connect_to_server()
        routes.append(ws)

    await page.route_web_socket(re.compile(r"/socket\.io/"), through)
    await sign_up(page, web_server, "Yuri")
    room_id = await create_room(page, "Flaky network")

    blocked.set()
    for ws in routes:
        await ws.close()
    await expect(page.locator("#conn-status")).to_have_text("Reconnecting…")
    # The upload (plain HTTP) goes through; its ingestion ends while the socket is down,
    # so the document_status events never reach this page.
    await choose_files(page, "Upload", [("notes.txt", b"Low tide at noon.\n")])
    item = page.get_by_role("list", name="Uploads").get_by_role("listitem")
    await expect(item).to_have_attribute("data-phase", "processing")
    for _ in range(100):
        files = (await rest(page, web_server, f"/api/v1/chat/{room_id}/files"))["files"]
        if files and files[0]["status"] != "processing":
            break
        await asyncio.sleep(0.1)
    assert files[0]["status"] == "ready"
    await expect(item).to_have_attribute("data-phase", "processing")  # nothing told it yet

    blocked.clear()
    await expect(page.locator("#conn-status")).to_have_text("", timeout=15_000)
    await expect(item).to_have_attribute("data-phase", "ready")
    await expect(item).to_contain_text("Ready: the assistant can use it")
