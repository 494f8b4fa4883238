"""Attachments in the browser client: a photo attached to a message shows as a thumbnail
on every member's page, and the model receives it (issue 9 part 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from tests.client import Parlour
from tests.media_fixtures import png
from tests.scripted_provider import ScriptedProvider
from tests.web_fixtures import create_room, invite, needs_chromium, open_room, sign_up

pytestmark = needs_chromium


async def test_an_attached_photo_is_a_thumbnail_for_both_members(
    web_server: Parlour, web_scripted: ScriptedProvider, new_page: Any, tmp_path: Path,
) -> None:
    owner, member = await new_page(), await new_page()
    await sign_up(owner, web_server, "Olive")
    member_email = await sign_up(member, web_server, "Max")
    room_id = await create_room(owner, "Photos")
    await invite(owner, member_email)
    await open_room(member, room_id, "Photos")

    photo = tmp_path / "red.png"
    photo.write_bytes(png(64, 48))
    await owner.locator("#attach-input").set_input_files([str(photo)])
    await expect(owner.locator("#attach-list")).to_contain_text("red.png")
    await owner.get_by_label("Message", exact=True).fill("@assistant what is in this picture?")
    await owner.get_by_role("button", name="Send").click()
    await expect(owner.locator("#attach-list")).to_be_hidden()  # sent with the message

    for page in (owner, member):
        thumb = page.locator("#message-list li.msg[data-role='user'] img.attach-thumb")
        await expect(thumb).to_be_visible(timeout=15_000)
        await expect(thumb).to_have_attribute("alt", "red.png")
        # The picture really loaded (the file route answered this member's browser).
        width = 0
        for _ in range(100):  # visible comes before loaded
            width = await thumb.evaluate("img => img.complete ? img.naturalWidth : 0")
            if width:
                break
            await asyncio.sleep(0.1)
        assert width == 64
    await expect(owner.locator("#message-list li.msg[data-role='assistant']")).to_contain_text(
        "Sure, here you are.", timeout=15_000)
    prompt = web_scripted.prompts[-1]
    assert prompt[-1].images and prompt[-1].images[0].media_type == "image/png"
