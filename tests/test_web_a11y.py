"""Accessibility and layout: axe-core (tests/vendor) finds no serious or critical violation
on the log-in page, a room, the documents page and the settings with the tools a room can
use (tool calls in a reply and the demo-model notice are checked in tests/test_web_tools.py);
dark mode follows the system; the room and its panels fit a 360 px wide screen.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect

from tests.client import Parlour
from tests.web_fixtures import axe_violations, create_room, needs_chromium, send, sign_up

pytestmark = needs_chromium


async def assert_accessible(page: Page, where: str, *, contrast_only: bool = False) -> None:
    found = await axe_violations(page, rules=["color-contrast"] if contrast_only else None)
    assert found == [], f"{where}: {found}"


async def fits(page: Page) -> None:
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow}px wider than the screen"


async def test_no_serious_violations_light_and_dark(web_server: Parlour, new_page: Any) -> None:
    # Every rule in light mode; in dark mode only the colours change, so only contrast.
    for scheme in ("light", "dark"):
        dark = scheme == "dark"
        page = await new_page(color_scheme=scheme)
        await page.goto(web_server.url + "/")
        await expect(page.get_by_label("Email", exact=True)).to_be_visible()
        await assert_accessible(page, f"log-in page ({scheme})", contrast_only=dark)

        await sign_up(page, web_server, "Zoe")
        await create_room(page, "Accessible room")
        await send(page, "Hello **there**")
        await expect(page.locator('#message-list li[data-role="assistant"][data-status="complete"]')
                     ).to_have_count(1)
        await assert_accessible(page, f"room ({scheme})", contrast_only=dark)

        await page.get_by_role("button", name="Settings", exact=True).click()
        await expect(page.locator("#settings-form")).to_be_visible()
        # With the server's tools listed: a configured one, and unconfigured ones disabled
        # with their hint.
        tools = page.locator("#settings-tools")
        await expect(tools.get_by_role("checkbox", name="search_documents")).to_be_enabled()
        await expect(tools.get_by_role("checkbox", name="calendar_list_events")).to_be_disabled()
        await assert_accessible(page, f"settings with tools ({scheme})", contrast_only=dark)
        await page.get_by_role("button", name="Members", exact=True).click()
        await assert_accessible(page, f"members ({scheme})", contrast_only=dark)

        await page.get_by_role("link", name="Documents").click()
        await expect(page.locator("#documents-empty")).to_be_visible()
        await assert_accessible(page, f"documents ({scheme})", contrast_only=dark)

        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(22, 23, 26)") == dark, background


async def test_usable_at_360_px(web_server: Parlour, new_page: Any) -> None:
    page = await new_page(viewport={"width": 360, "height": 740})
    await sign_up(page, web_server, "Nora")
    await create_room(page, "A room with a rather long title for a small phone screen")
    await send(page, "A question that wraps over several lines on a narrow screen, surely.")
    await expect(page.locator('#message-list li[data-role="assistant"][data-status="complete"]')
                 ).to_have_count(1)
    await fits(page)
    for panel in ("Settings", "Members", "Files"):
        await page.get_by_role("button", name=panel, exact=True).click()
        await expect(page.locator("#room-panel")).to_be_visible()
        await fits(page)
    await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    for link in ("Documents", "Public rooms", "Usage"):
        await page.get_by_role("link", name=link).click()
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await fits(page)
    await expect(page.locator("#usage-chart rect")).to_have_count(30)
