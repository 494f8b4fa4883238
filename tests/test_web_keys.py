"""The API keys page, as a user does it: create a key, copy it once, use it, revoke it."""

from __future__ import annotations

import re
from typing import Any

import openai
from playwright.async_api import expect

from tests.client import Parlour
from tests.web_fixtures import axe_violations, needs_chromium, sign_up

pytestmark = needs_chromium


async def test_create_copy_use_and_revoke_a_key(web_server: Parlour, new_page: Any) -> None:
    page = await new_page(permissions=["clipboard-read", "clipboard-write"])
    await sign_up(page, web_server, "Kay")
    await page.get_by_role("link", name="API keys").click()
    await expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    await expect(page.locator("#keys-base-url")).to_have_text(f"{web_server.url}/v1")
    await expect(page.locator("#keys-empty")).to_be_visible()

    await page.get_by_label("Name", exact=True).fill("my editor")
    await page.get_by_label("Expires").select_option(label="in 30 days")
    await page.get_by_role("button", name="Create key").click()
    shown = page.locator("#key-new-value")
    await expect(shown).to_have_text(re.compile(r"^plr_[\w-]{43}$"))
    key = await shown.inner_text()
    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.locator("#key-copy-status")).to_have_text("Copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == key
    row = page.get_by_role("list", name="Your API keys").get_by_role("listitem").filter(
        has_text="my editor")
    await expect(row).to_contain_text(key[:12])
    await expect(row).to_contain_text("never used · expires in 29 days · no calls yet")
    assert key not in await row.inner_text()  # the list shows the prefix only
    found = await axe_violations(page)
    assert found == [], found

    # Shown once: after "Done" (or a reload) the key is gone from the page.
    await page.get_by_role("button", name="Done").click()
    await expect(page.locator("#key-new")).to_be_hidden()
    await page.reload()
    await expect(row).to_be_visible()
    assert key not in await page.content()

    async with openai.AsyncOpenAI(base_url=f"{web_server.url}/v1", api_key=key,
                                  max_retries=0) as client:
        done = await client.chat.completions.create(
            model="scripted:fixed", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content
        await page.reload()  # the list counts the key's calls
        await expect(row).to_contain_text("1 call · ")

        await row.get_by_role("button", name="Revoke my editor").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_role("button", name="Revoke", exact=True).click()
        await expect(row).to_have_count(0)
        await expect(page.locator("#keys-empty")).to_be_visible()
        try:
            await client.models.list()
            raise AssertionError("a revoked key answered")
        except openai.AuthenticationError:
            pass
