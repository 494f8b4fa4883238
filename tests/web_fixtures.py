"""Browser-test fixtures shared by the tests/test_web*.py modules (a pytest plugin).

One headless Debian chromium for the whole session (never `playwright install`: the
browser is /usr/bin/chromium, apt package `chromium`); one browser context per user, so
cookies and localStorage are separate like two people's browsers. `web_server` is one
Parlour per test module (scripted provider), shared by the tests that need no special
settings: each test signs up its own users.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from app.config import Settings, load_settings
from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider

CHROMIUM = os.environ.get("PARLOUR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct horse 1"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

# Outside CI a machine without chromium skips these; CI (.ci/run installs it) must run them.
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason=f"no chromium at {CHROMIUM} (apt-get install chromium)",
)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Debian chromium for the session."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


@asynccontextmanager
async def pages_of(browser: Browser) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """make(**context_options): a page in a fresh browser context (one per user).

    At the end: no uncaught error in any page, and no state update that threw
    (the client logs those as `parlour: ...` console errors).
    """
    contexts = []
    errors: list[str] = []

    async def make(**options: Any) -> Page:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = await browser.new_context(**options)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text)
                if m.type == "error" and m.text.startswith("parlour:") else None)
        return page

    yield make
    for context in contexts:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[Any]:
    """new_page(**context_options): see `pages_of`."""
    async with pages_of(browser) as make:
        yield make


@pytest.fixture(scope="module")
def web_scripted() -> ScriptedProvider:
    return ScriptedProvider(deltas=["Sure, ", "here ", "you ", "are."], delay=0.02)


def web_settings(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory, name: str,
                 **overrides: Any) -> Settings:
    """Settings of a browser-test server: its own database, a scripted default model."""
    return load_settings(None, **{
        "data_dir": str(tmp_path_factory.mktemp(name) / "data"),
        "mongo__uri": mongo_uri,
        "mongo__database": f"t_{uuid.uuid4().hex[:12]}",
        "auth__jwt_secret": "test-secret-0123456789abcdef-0123456789",
        "server__log_format": "text",
        "llm__local_enabled": False,
        "llm__default_model": "scripted:fixed",
        **overrides,
    })


@pytest.fixture(scope="module")
async def web_server(
    mongo_uri: str, tmp_path_factory: pytest.TempPathFactory, web_scripted: ScriptedProvider
) -> AsyncIterator[Parlour]:
    """One Parlour for a test module: rooms of 3 members at most, uploads of 20 KB at most."""
    settings = web_settings(mongo_uri, tmp_path_factory, "web",
                            limits__max_members=3, limits__max_upload_mb=0.02)
    server = await start_parlour(settings, providers={"scripted": web_scripted})
    yield server
    await server.close()


_users = itertools.count()


async def sign_up(page: Page, server: Parlour, name: str) -> str:
    """Sign up through the auth screen; returns the email."""
    email = f"{name.lower()}.{next(_users)}.{uuid.uuid4().hex[:6]}@example.com"
    await page.goto(server.url + "/")
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.locator("#me-name")).to_have_text(name)
    await expect(page.locator("#conn-status")).to_have_text("")  # socket connected
    return email


async def create_room(page: Page, title: str) -> str:
    """Press "New room", name it; returns the room id (from the address)."""
    before = page.url
    await page.get_by_role("button", name="New room").click()
    await expect(page.locator("#room-pane")).to_be_visible()
    # The new room is created and open: renaming earlier would rename no room (or the last).
    await expect(page).not_to_have_url(before)
    room_id = page.url.split("#/room/", 1)[1].split("/")[0]
    assert room_id
    current = page.locator(f"#room-list a[aria-current='page'][data-room-id='{room_id}']")
    await expect(current).to_be_visible()
    title_input = page.get_by_label("Room title")
    await expect(title_input).not_to_have_value("")
    await title_input.fill(title)
    await title_input.press("Enter")
    await expect(current).to_contain_text(title)
    return room_id


async def invite(page: Page, email: str) -> None:
    """Invite by email from the room on screen (owner)."""
    await page.get_by_role("button", name="Invite").click()
    await page.get_by_label("Email to invite").fill(email)
    await page.get_by_role("button", name="Add to room").click()
    await expect(page.locator("#invite-form")).to_be_hidden()


async def open_room(page: Page, room_id: str, title: str) -> None:
    """Open a room from the room list."""
    link = page.locator(f'#room-list a[data-room-id="{room_id}"]')
    await expect(link).to_contain_text(title)
    await link.click()
    await expect(page.locator("#room-pane")).to_be_visible()
    await expect(page.locator("#online-list")).to_contain_text("(you)")


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_role("button", name="Send").click()


async def user_id(page: Page, server: Parlour) -> str:
    resp = await page.context.request.get(f"{server.url}/api/v1/auth/me")
    assert resp.ok, await resp.text()
    data: dict[str, Any] = await resp.json()
    return str(data["user"]["user_id"])


async def axe_violations(page: Page, rules: list[str] | None = None) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (all rules, or `rules`)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated, not added as a <script>: the page's CSP runs only its own files.
        await page.evaluate(AXE.read_text())
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": rules}
    result: dict[str, Any] = await page.evaluate(
        "async (options) => await axe.run(document, options)", options
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]
