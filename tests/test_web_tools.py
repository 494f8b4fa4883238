"""Tools and the demo model in the browser client (issue 8 part 4, issue 12 point 1).

One Parlour for the module, with the fake Google token endpoint and Calendar API of
tests/tool_stubs.py configured (so `calendar_list_events` is a configured tool), the
scripted provider as the default model (`scripted:tools` asks for the calls the test
scripts, then answers with their results), and a second scripted provider registered
as `local`, so `local:smollm2` (marked `demo` in the catalog) answers without llama.cpp.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from app.llm.base import ToolCall
from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.test_web_manage import rest
from tests.tool_stubs import FakeGoogle, serve
from tests.web_fixtures import (
    axe_violations,
    create_room,
    invite,
    needs_chromium,
    open_room,
    send,
    sign_up,
    web_settings,
)

pytestmark = needs_chromium
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class HeldGoogle(FakeGoogle):
    """FakeGoogle whose event listing waits for `release`: a test holds a call `running`."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.release.set()

    async def _list(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return await super()._list(request)


@pytest.fixture(scope="module")
async def google(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[HeldGoogle, Path]]:
    fake = HeldGoogle()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake, fake.key_file(tmp_path_factory.mktemp("google"))


@pytest.fixture(scope="module")
def scripted() -> ScriptedProvider:
    return ScriptedProvider(delay=0.01)


@pytest.fixture(scope="module")
def demo_model() -> ScriptedProvider:
    """Answers for `local:smollm2`, the model the catalog marks `demo`."""
    return ScriptedProvider(name="local", deltas=["The ", "capital ", "is ", "Sydney."])


@pytest.fixture(scope="module")
async def server(
    mongo_uri: str, tmp_path_factory: pytest.TempPathFactory, scripted: ScriptedProvider,
    demo_model: ScriptedProvider, google: tuple[HeldGoogle, Path],
) -> AsyncIterator[Parlour]:
    fake, key_file = google
    settings = web_settings(
        mongo_uri, tmp_path_factory, "webtools",
        llm__default_model="scripted:tools",
        tools__google_calendar={"service_account_file": str(key_file),
                                "api_base_url": fake.url, "calendar_id": "team@example.com"},
    )
    server = await start_parlour(settings, providers={"scripted": scripted, "local": demo_model})
    yield server
    await server.close()


def reply(page: Page) -> Any:
    return page.locator('#message-list li[data-role="assistant"]')


async def test_owner_picks_tools_and_every_member_sees_the_call_run(
    server: Parlour, new_page: Any, scripted: ScriptedProvider, google: tuple[HeldGoogle, Path],
) -> None:
    fake, _ = google
    olive, max_ = await new_page(), await new_page()
    await sign_up(olive, server, "Olive")
    max_email = await sign_up(max_, server, "Max")
    room_id = await create_room(olive, "Team")
    await invite(olive, max_email)
    await open_room(max_, room_id, "Team")

    # The owner's settings list the server's tools; unconfigured ones cannot be turned on.
    await olive.get_by_role("button", name="Settings", exact=True).click()
    tools = olive.locator("#settings-tools")
    calendar = tools.get_by_role("checkbox", name="calendar_list_events")
    notion = tools.get_by_role("checkbox", name="notion_search")
    await expect(calendar).to_be_enabled()
    await expect(calendar).not_to_be_checked()
    await expect(notion).to_be_disabled()
    await expect(notion).to_have_accessible_description(
        re.compile(r"^Search the Notion pages .*\. Not set up on this server\.$"))

    # A tool list gone stale (the server's configuration changed since the page read it):
    # the refusal is the server's sentence next to the tools, and nothing is saved.
    await notion.evaluate("(box) => { box.disabled = false; box.checked = true; }")
    await calendar.check()
    await olive.get_by_role("button", name="Save settings").click()
    error = olive.locator("#settings-tools-error")
    await expect(error).to_contain_text("not configured on this server: notion_search")
    await expect(error).to_contain_text("NOTION_TOKEN")
    assert (await rest(olive, server, f"/api/v1/chat/{room_id}"))["tools"] == []

    await notion.uncheck()
    await olive.get_by_role("button", name="Save settings").click()
    await expect(olive.locator("#settings-status")).to_have_text("Saved.")
    await expect(error).to_have_text("")
    assert (await rest(olive, server, f"/api/v1/chat/{room_id}"))["tools"] == ["calendar_list_events"]
    await expect(calendar).to_be_checked()
    ARTIFACTS.mkdir(exist_ok=True)
    await olive.screenshot(path=str(ARTIFACTS / "settings-tools.png"))
    await max_.get_by_role("button", name="Settings", exact=True).click()
    await expect(max_.locator("#settings-view-tools")).to_have_text("calendar_list_events")

    # A member asks; the calendar answers only when the test lets it.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    nine = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=UTC)
    fake.events.append({"id": "e1", "summary": "Dentist at 9",
                        "start": {"dateTime": nine.isoformat()},
                        "end": {"dateTime": (nine + timedelta(hours=1)).isoformat()}})
    arguments = json.dumps({"time_min": tomorrow.isoformat(),
                            "time_max": (tomorrow + timedelta(days=1)).isoformat()})
    scripted.tool_script = [(ToolCall("call_cal", "calendar_list_events", arguments),)]
    fake.release.clear()
    try:
        await send(max_, "@assistant what's on my calendar tomorrow?")
        for page in (olive, max_):
            call = reply(page).locator('li.tool-call[data-call-id="call_cal"]')
            await expect(call).to_have_attribute("data-status", "running")
            await expect(call.locator(".tool-name")).to_have_text("calendar_list_events")
            await expect(call.locator(".tool-args")).to_contain_text(f'"time_min":"{tomorrow.isoformat()}"')
            await expect(call.locator(".tool-status")).to_have_text("running…")
            await expect(reply(page)).to_have_attribute("data-status", "streaming")
    finally:
        fake.release.set()

    for page in (olive, max_):
        done = reply(page)
        await expect(done).to_have_attribute("data-status", "complete")
        await expect(done.locator(".msg-body")).to_contain_text("Dentist at 9")  # the answer uses it
        call = done.locator('li.tool-call[data-call-id="call_cal"]')
        await expect(call).to_have_attribute("data-status", "done")
        await expect(call.locator(".tool-status")).to_have_text("done")
        result = call.locator("details.tool-result")
        await expect(result.locator(".tool-detail-result pre")).to_be_hidden()  # folded
        await result.locator("summary").click()
        await expect(result.locator(".tool-detail-result pre")).to_contain_text("Dentist at 9")
        await expect(done.locator(".msg-notice")).to_have_count(0)  # not a demo model

    # After a reload the stored message shows the same call.
    await max_.reload()
    call = reply(max_).locator('li.tool-call[data-call-id="call_cal"]')
    await expect(call).to_have_attribute("data-status", "done")
    await expect(call.locator(".tool-args")).to_contain_text("time_min")
    await call.locator("summary").click()
    await expect(call.locator(".tool-detail-result pre")).to_contain_text("Dentist at 9")
    await max_.screenshot(path=str(ARTIFACTS / "tool-call.png"))
    # The call's block, opened, reads well in light and dark mode.
    assert await axe_violations(max_) == []
    await max_.emulate_media(color_scheme="dark")
    assert await axe_violations(max_, rules=["color-contrast"]) == []


async def test_replies_from_the_demo_model_carry_its_notice(server: Parlour, new_page: Any) -> None:
    page = await new_page()
    await sign_up(page, server, "Dora")
    await create_room(page, "Quiz")
    await page.get_by_role("button", name="Settings", exact=True).click()
    form = page.locator("#settings-form")
    await form.get_by_label("Model").select_option("local:smollm2")
    await form.get_by_role("button", name="Save settings").click()
    await expect(form.locator("#settings-status")).to_have_text("Saved.")
    await page.get_by_role("button", name="Close").click()

    await send(page, "What is the capital of Australia?")
    done = reply(page)
    await expect(done).to_have_attribute("data-status", "complete")
    await expect(done.locator(".msg-body")).to_have_text("The capital is Sydney.")
    notice = done.get_by_role("note")
    await expect(notice).to_contain_text("135M-parameter demo model")
    await expect(notice.locator("code")).to_contain_text("OPENAI_API_KEY=sk-... make run")

    # The notice reads well in light and dark mode.
    assert await axe_violations(page, rules=["color-contrast"]) == []
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "demo-notice.png"))
    await page.emulate_media(color_scheme="dark")
    assert await axe_violations(page, rules=["color-contrast"]) == []
