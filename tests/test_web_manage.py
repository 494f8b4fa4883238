"""What a user manages from the page, as they do it: documents, room files, settings,
members and roles, leaving, deleting a room, public rooms, usage. Two users (or three)
where the flow involves another member. One Parlour for the module (tests/web_fixtures.py).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Download, Page, expect

from tests.client import Parlour
from tests.web_fixtures import (
    create_room,
    invite,
    needs_chromium,
    open_room,
    send,
    sign_up,
)

pytestmark = needs_chromium


async def choose_files(page: Page, button: str, files: list[tuple[str, bytes]]) -> None:
    """Press an upload button and pick files in its file chooser."""
    async with page.expect_file_chooser() as info:
        await page.get_by_role("button", name=button, exact=True).click()
    chooser = await info.value
    await chooser.set_files([{"name": n, "mimeType": "text/plain", "buffer": b} for n, b in files])


async def confirm(page: Page, button: str) -> None:
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name=button, exact=True).click()
    await expect(dialog).to_be_hidden()


async def downloaded(download: Download) -> bytes:
    """The bytes the browser saved."""
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


async def rest(page: Page, server: Parlour, path: str) -> Any:
    resp = await page.context.request.get(server.url + path)
    assert resp.ok, await resp.text()
    return await resp.json()


async def test_documents_page_upload_status_download_delete(
    web_server: Parlour, new_page: Any
) -> None:
    page = await new_page()
    await sign_up(page, web_server, "Dora")
    await page.get_by_role("link", name="Documents").click()
    await expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()
    await expect(page.locator("#documents-empty")).to_be_visible()

    text = b"The harbour opens at six.\n"
    await choose_files(page, "Upload documents", [("harbour.txt", text)])
    row = page.get_by_role("list", name="Your documents").get_by_role("listitem").filter(
        has_text="harbour.txt")
    await expect(row).to_contain_text("Ready", timeout=15_000)  # pushed by document_status
    await expect(row).to_have_attribute("data-status", "ready")
    await expect(page.locator("#documents-uploads")).to_be_hidden()

    async with page.expect_download() as info:
        await row.get_by_role("link", name="Download harbour.txt").click()
    download = await info.value
    assert download.suggested_filename == "harbour.txt"
    assert await downloaded(download) == text

    await row.get_by_role("button", name="Delete harbour.txt").click()
    await confirm(page, "Delete")
    await expect(row).to_have_count(0)
    await expect(page.locator("#documents-empty")).to_be_visible()
    assert (await rest(page, web_server, "/api/v1/documents"))["documents"] == []


async def test_room_files_panel_shared_by_two_members(web_server: Parlour, new_page: Any) -> None:
    alice, bob = await new_page(), await new_page()
    await sign_up(alice, web_server, "Alice")
    bob_email = await sign_up(bob, web_server, "Bob")
    room_id = await create_room(alice, "Shared files")
    await invite(alice, bob_email)
    await choose_files(alice, "Upload", [("plan.txt", b"Meet at the pier.\n")])
    await expect(alice.get_by_role("list", name="Uploads")).to_contain_text(
        "Ready: the assistant can use it", timeout=15_000)

    await open_room(bob, room_id, "Shared files")
    await bob.get_by_role("button", name="Files", exact=True).click()
    assert bob.url.endswith(f"#/room/{room_id}/files")
    panel = bob.locator("#room-panel")
    await expect(panel.get_by_role("heading")).to_have_text("Files of “Shared files”")
    row = panel.get_by_role("listitem").filter(has_text="plan.txt")
    await expect(row).to_contain_text("Ready")
    async with bob.expect_download() as info:
        await row.get_by_role("link", name="Download plan.txt").click()
    assert await downloaded(await info.value) == b"Meet at the pier.\n"
    # Only its uploader or the room owner deletes a file: Bob is offered no Delete.
    await expect(row.get_by_role("button", name="Delete plan.txt")).to_have_count(0)

    await alice.get_by_role("button", name="Files", exact=True).click()
    mine = alice.locator("#room-panel").get_by_role("listitem").filter(has_text="plan.txt")
    await mine.get_by_role("button", name="Delete plan.txt").click()
    await expect(alice.locator("#room-panel")).to_contain_text("No files in this room yet")
    assert (await rest(bob, web_server, f"/api/v1/chat/{room_id}/files"))["files"] == []
    await alice.get_by_role("button", name="Close").click()
    await expect(alice.locator("#room-panel")).to_be_hidden()


async def test_owner_edits_settings_and_members_see_them(web_server: Parlour, new_page: Any) -> None:
    alice, bob = await new_page(), await new_page()
    await sign_up(alice, web_server, "Ann")
    bob_email = await sign_up(bob, web_server, "Ben")
    room_id = await create_room(alice, "Plans")
    await invite(alice, bob_email)
    await open_room(bob, room_id, "Plans")

    await alice.get_by_role("button", name="Settings", exact=True).click()
    form = alice.locator("#settings-form")
    await expect(form.get_by_label("Model")).to_be_enabled()
    await form.get_by_label("Title").fill("Trip plans")
    await form.get_by_label("System prompt").fill("Answer like a ship's captain.")
    await form.get_by_label("Visibility").select_option("public")
    await form.get_by_label("Assistant mode").select_option("off")
    await form.get_by_role("button", name="Save settings").click()
    await expect(form.locator("#settings-status")).to_have_text("Saved.")

    chat = await rest(alice, web_server, f"/api/v1/chat/{room_id}")
    assert (chat["title"], chat["system_prompt"], chat["visibility"], chat["assistant_mode"]) == (
        "Trip plans", "Answer like a ship's captain.", "public", "off")
    for page in (alice, bob):
        await expect(page.locator(f'#room-list a[data-room-id="{room_id}"]')).to_have_text("Trip plans")
        await expect(page.locator("#room-info")).to_contain_text("the assistant is off")
        await expect(page.locator("#room-info")).to_contain_text("public")

    # A member reads the settings; only the owner has the form.
    await bob.get_by_role("button", name="Settings", exact=True).click()
    await expect(bob.locator("#room-panel")).to_contain_text("Answer like a ship's captain.")
    await expect(bob.get_by_role("button", name="Save settings")).to_have_count(0)
    await expect(bob.get_by_role("button", name="Delete room…")).to_have_count(0)


async def test_members_change_role_remove_leave_and_a_full_room(
    web_server: Parlour, new_page: Any
) -> None:
    owner, bob, cat, dan = [await new_page() for _ in range(4)]
    await sign_up(owner, web_server, "Olga")
    emails = [await sign_up(p, web_server, n) for p, n in ((bob, "Boris"), (cat, "Cate"), (dan, "Dmitri"))]
    room_id = await create_room(owner, "Crew")
    await invite(owner, emails[0])
    await invite(owner, emails[1])
    await open_room(bob, room_id, "Crew")
    await open_room(cat, room_id, "Crew")

    # The room holds 3 members at most: the server's sentence shows by the invite form.
    await owner.get_by_role("button", name="Invite").click()
    await owner.get_by_label("Email to invite").fill(emails[2])
    await owner.get_by_role("button", name="Add to room").click()
    await expect(owner.locator("#invite-error")).to_have_text("The room is full.")
    await expect(owner.locator("#invite-form")).to_be_visible()
    await expect(owner.locator("#room-info")).to_contain_text("3 members")
    await owner.get_by_role("button", name="Cancel").click()

    await owner.get_by_role("button", name="Members", exact=True).click()
    panel = owner.locator("#room-panel")
    await expect(panel.get_by_role("listitem")).to_have_count(3)
    await panel.get_by_label("Role of Boris").select_option("viewer")
    await expect(bob.locator("#room-info")).to_contain_text("you can read but not write here")
    await expect(bob.get_by_label("Message", exact=True)).to_be_disabled()
    await expect(bob.get_by_role("button", name="Send")).to_be_disabled()
    await expect(panel.get_by_label("Role of Boris")).to_have_value("viewer")

    await panel.get_by_role("button", name="Remove Cate").click()
    await confirm(owner, "Remove")
    await expect(panel.get_by_role("listitem")).to_have_count(2)
    await expect(cat.locator("#no-room")).to_be_visible()  # back to the room list
    await expect(cat.locator(f'#room-list a[data-room-id="{room_id}"]')).to_have_count(0)

    await bob.get_by_role("button", name="Members", exact=True).click()
    await bob.get_by_role("button", name="Leave room").click()
    await confirm(bob, "Leave room")
    await expect(bob.locator("#no-room")).to_be_visible()
    await expect(bob.locator(f'#room-list a[data-room-id="{room_id}"]')).to_have_count(0)
    await expect(panel.get_by_role("listitem")).to_have_count(1)
    await expect(owner.locator("#room-info")).to_contain_text("1 member")
    assert (await rest(bob, web_server, "/api/v1/chat"))["chats"] == []


async def test_public_room_found_and_joined(web_server: Parlour, new_page: Any) -> None:
    alice, bob = await new_page(), await new_page()
    await sign_up(alice, web_server, "Pia")
    await sign_up(bob, web_server, "Quin")
    room_id = await create_room(alice, "Open harbour")
    await alice.get_by_role("button", name="Settings", exact=True).click()
    await alice.locator("#settings-form").get_by_label("Visibility").select_option("public")
    await alice.get_by_role("button", name="Save settings").click()
    await expect(alice.locator("#room-info")).to_contain_text("public")

    await bob.get_by_role("link", name="Public rooms").click()
    row = bob.get_by_role("list", name="Public rooms").get_by_role("listitem").filter(
        has_text="Open harbour")
    await expect(row).to_contain_text("owner Pia")
    await row.get_by_role("button", name="Join Open harbour").click()
    await expect(bob.locator("#room-title")).to_have_text("Open harbour")
    assert bob.url.endswith(f"#/room/{room_id}")
    await expect(bob.locator(f'#room-list a[data-room-id="{room_id}"]')).to_be_visible()
    await expect(alice.locator("#online-list")).to_contain_text("Quin")
    await expect(alice.locator("#room-info")).to_contain_text("2 members")
    await bob.get_by_role("link", name="Public rooms").click()
    await expect(row.get_by_role("link", name="Open Open harbour")).to_be_visible()


async def test_deleting_the_room_returns_every_member_to_the_list(
    web_server: Parlour, new_page: Any
) -> None:
    alice, bob = await new_page(), await new_page()
    await sign_up(alice, web_server, "Rita")
    bob_email = await sign_up(bob, web_server, "Sam")
    room_id = await create_room(alice, "Short-lived")
    await invite(alice, bob_email)
    await open_room(bob, room_id, "Short-lived")
    await send(bob, "hello")
    await expect(alice.locator('#message-list li[data-role="user"]')).to_have_count(1)

    await alice.get_by_role("button", name="Settings", exact=True).click()
    await alice.get_by_role("button", name="Delete room…").click()
    dialog = alice.get_by_role("dialog")
    await expect(dialog).to_contain_text("Delete “Short-lived”?")
    await dialog.get_by_role("button", name="Cancel").click()  # changed my mind
    await expect(alice.locator("#room-pane")).to_be_visible()
    await alice.get_by_role("button", name="Delete room…").click()
    await confirm(alice, "Delete room")

    for page in (alice, bob):
        await expect(page.locator("#no-room")).to_be_visible()
        await expect(page.locator(f'#room-list a[data-room-id="{room_id}"]')).to_have_count(0)
        assert "#/room/" not in page.url
    resp = await bob.context.request.get(f"{web_server.url}/api/v1/chat/{room_id}")
    assert resp.status == 404


async def test_usage_page_shows_questions_latency_and_tokens_per_day(
    web_server: Parlour, new_page: Any
) -> None:
    page = await new_page()
    await sign_up(page, web_server, "Uma")
    await create_room(page, "Counting")
    await send(page, "How many?")
    done = page.locator('#message-list li[data-role="assistant"][data-status="complete"]')
    await expect(done).to_have_count(1)
    await page.get_by_role("link", name="Usage").click()
    stats = page.locator("#usage-stats")
    await expect(stats).to_contain_text("Questions asked")
    await expect(stats.locator("dd").first).to_have_text("1")
    await expect(stats).to_contain_text(re.compile(r"Time to first token \(p50 / p95\)\d+ ms / \d+ ms"))
    chart = page.get_by_role("img", name=re.compile("Tokens per day"))
    await expect(chart.locator("rect")).to_have_count(30)
    today = page.locator("#usage-table tbody tr")
    await expect(today).to_have_count(1)
    await expect(today.locator("td").first).to_have_text("1")
    tall = await chart.locator("rect").last.get_attribute("height")
    assert tall is not None and float(tall) > 0, "today's bar is the tallest"
