"""The browser client end to end: Playwright driving Debian's chromium against a real Parlour.

Never `playwright install`: the browser is the system's /usr/bin/chromium (apt package
`chromium`). The tests share one Parlour (scripted provider) and open one browser
context per user, so cookies and localStorage are separate like two people's browsers.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests import test_oidc
from tests.client import Parlour
from tests.scripted_provider import ScriptedProvider
from tests.test_oidc import IDP_WARNINGS, idp_user
from tests.web_fixtures import create_room, needs_chromium, send, sign_up

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# The answer of the scripted model, one word per delta: long enough to watch it grow.
ANSWER = (
    "Pack layers for cold mornings, a rain shell, sturdy boots, a headlamp, water, "
    "snacks, sunscreen, a paper map and a small first aid kit. Tell someone your route "
    "before you leave the trailhead."
)
ANSWER_WORDS = ANSWER.split()

# Watches the first assistant element not in `known` and records its text length every
# 20 ms while it streams, then its final status and text: window.__watch.
WATCH_JS = """(known) => {
  const w = window.__watch = { lengths: [], done: false, status: null, text: null, id: null };
  const tick = () => {
    const el = [...document.querySelectorAll('#message-list li[data-role="assistant"]')]
      .find((e) => !known.includes(e.dataset.messageId));
    if (el) {
      w.id = el.dataset.messageId;
      const text = el.querySelector('.msg-body').textContent.trim();
      if (el.dataset.status !== 'streaming') {
        w.status = el.dataset.status; w.text = text; w.done = true; return;
      }
      if (w.lengths[w.lengths.length - 1] !== text.length) w.lengths.push(text.length);
    }
    setTimeout(tick, 20);
  };
  tick();
}"""


pytestmark = needs_chromium


@pytest.fixture
def scripted(web_scripted: ScriptedProvider) -> ScriptedProvider:
    """The module's scripted model (tests/web_fixtures.py), answering ANSWER word by word."""
    web_scripted.deltas = [w + " " for w in ANSWER_WORDS]
    web_scripted.delay = 0.05
    return web_scripted


@pytest.fixture
def server(web_server: Parlour) -> Parlour:
    """The module's Parlour: each test signs up its own users and rooms."""
    return web_server


async def known_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator("#message-list li[data-message-id]").evaluate_all(
        "(els) => els.map((e) => e.dataset.messageId)"
    )
    return ids


async def watched(page: Page) -> dict[str, Any]:
    # Polled from here: the page's Content-Security-Policy forbids the string evaluation
    # wait_for_function does in the page.
    for _ in range(750):
        result: dict[str, Any] | None = await page.evaluate(
            "() => (window.__watch && window.__watch.done) ? window.__watch : null")
        if result is not None:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("the watched reply did not finish in 15 s")


def assistant(page: Page, status: str | None = None) -> Any:
    sel = '#message-list li[data-role="assistant"]'
    return page.locator(sel + (f'[data-status="{status}"]' if status else ""))


# The mock OpenID provider and a Parlour using it: test_oidc's fixtures, by name.
idp, sso_settings, sso = test_oidc.idp, test_oidc.sso_settings, test_oidc.sso


# ---- tests ---------------------------------------------------------------------------


async def test_two_users_chat_with_a_streamed_answer(
    server: Parlour, new_page: Any, scripted: ScriptedProvider
) -> None:
    alice, bob = await new_page(), await new_page()
    await sign_up(alice, server, "Alice")
    bob_email = await sign_up(bob, server, "Bob")

    room_id = await create_room(alice, "Weekend hike")
    await alice.get_by_role("button", name="Invite").click()
    await alice.get_by_label("Email to invite").fill(bob_email)
    await alice.get_by_role("button", name="Add to room").click()
    await expect(alice.locator("#invite-form")).to_be_hidden()
    await expect(alice.locator("#room-info")).to_contain_text("2 members")

    # Bob is told, sees the room in his list, opens it.
    link = bob.locator(f'#room-list a[data-room-id="{room_id}"]')
    await expect(link).to_contain_text("Weekend hike")
    await link.click()
    await expect(bob.locator("#room-title")).to_have_text("Weekend hike")
    await expect(bob.locator("#room-info")).to_contain_text("owner Alice")

    # Both see each other online.
    await expect(alice.locator("#online-list")).to_contain_text("Bob")
    await expect(alice.locator("#online-list")).to_contain_text("Alice (you)")
    await expect(bob.locator("#online-list")).to_contain_text("Alice")
    await expect(bob.locator("#online-list")).to_contain_text("Bob (you)")

    # Without a mention the assistant stays quiet in a shared room.
    await send(bob, "Hi Alice, ready for Saturday?")
    await expect(alice.locator('#message-list li[data-role="user"]')).to_have_text(
        [re.compile("ready for Saturday")]
    )

    # A question for the assistant streams to both pages.
    for page in (alice, bob):
        await page.evaluate(WATCH_JS, await known_ids(page))
    question = "@assistant what should we pack for a weekend in the mountains?"
    await send(alice, question)
    seen = [await watched(alice), await watched(bob)]
    for watch in seen:
        assert watch["status"] == "complete", watch
        assert watch["text"] == ANSWER
        intermediate = [n for n in watch["lengths"] if 0 < n < len(ANSWER)]
        assert len(set(intermediate)) >= 2, f"the reply did not visibly grow: {watch['lengths']}"
        assert watch["lengths"] == sorted(watch["lengths"])
    assert seen[0]["id"] == seen[1]["id"]

    for page in (alice, bob):
        messages = page.locator("#message-list li[data-seq]")
        await expect(messages).to_have_count(3)
        await expect(messages.nth(1)).to_contain_text(question)
        done = assistant(page, "complete")
        await expect(done).to_have_count(1)
        await expect(done.locator(".msg-author")).to_have_text("Assistant (scripted:fixed)")
        await expect(done.locator(".msg-usage")).to_contain_text("out")
        seqs = [int(s) for s in await messages.evaluate_all("(els) => els.map((e) => e.dataset.seq)")]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
    await expect(alice.get_by_role("button", name="Stop")).to_be_disabled()

    for page in (alice, bob):  # the invitation toasts, out of the picture
        for button in await page.locator("#toasts").get_by_role("button", name="Dismiss").all():
            await button.click()
        await expect(page.locator("#toasts .toast")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    await alice.screenshot(path=str(ARTIFACTS / "room.png"))
    await bob.screenshot(path=str(ARTIFACTS / "room-bob.png"))


async def test_stop_ends_a_reply_early(
    server: Parlour, new_page: Any, scripted: ScriptedProvider
) -> None:
    scripted.deltas = [f"w{i} " for i in range(400)]  # 20 s of answer unless stopped
    page = await new_page()
    await sign_up(page, server, "Carol")
    await create_room(page, "Long answers")
    await send(page, "@assistant tell me everything")

    streaming = assistant(page, "streaming")
    await expect(streaming).to_have_count(1)
    await expect(streaming.locator(".msg-state")).to_have_text("Writing…")
    await expect(streaming.locator(".msg-body")).to_contain_text("w2")
    stop = page.get_by_role("button", name="Stop")
    await expect(stop).to_be_enabled()
    await stop.click()

    stopped = assistant(page, "cancelled")
    await expect(stopped).to_have_count(1, timeout=5_000)
    await expect(stopped.locator(".msg-state")).to_have_text("Stopped")
    await expect(stopped).to_have_attribute("data-seq", "2")
    await expect(stop).to_be_disabled()
    text = (await stopped.locator(".msg-body").text_content() or "").strip()
    assert text.startswith("w0 w1 w2") and len(text.split()) < 100
    await expect(assistant(page, "streaming")).to_have_count(0)

    # The partial reply is what the server kept (REST, with the page's cookies).
    room_id = page.url.split("#/room/", 1)[1]
    resp = await page.context.request.get(f"{server.url}/api/v1/chat/{room_id}/messages")
    assert resp.ok, await resp.text()
    stored = (await resp.json())["messages"]
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "cancelled")]
    assert stored[1]["content"].strip() == text


async def test_reload_restores_the_room_and_its_history(
    server: Parlour, new_page: Any, scripted: ScriptedProvider
) -> None:
    scripted.deltas = ["Hello ", "from ", "the ", "assistant."]
    page = await new_page()
    await sign_up(page, server, "Dave")
    room_id = await create_room(page, "Remember me")
    await send(page, "@assistant say hello")
    await expect(assistant(page, "complete")).to_have_text(re.compile("Hello from the assistant"))
    await send(page, "thanks!")  # alone in the room: the assistant answers everything
    await expect(assistant(page, "complete")).to_have_count(2)
    await expect(page.locator("#message-list li[data-seq]")).to_have_count(4)

    await page.reload()
    # The refresh cookie logs the reload back in; the address reopens the room.
    await expect(page.locator("#me-name")).to_have_text("Dave")
    assert page.url.endswith(f"#/room/{room_id}")
    await expect(page.get_by_label("Room title")).to_have_value("Remember me")
    messages = page.locator("#message-list li[data-seq]")
    await expect(messages).to_have_count(4)
    await expect(messages.nth(0)).to_have_attribute("data-role", "user")
    await expect(messages.nth(0)).to_contain_text("@assistant say hello")
    await expect(messages.nth(2)).to_contain_text("thanks!")
    for i in (1, 3):
        await expect(messages.nth(i)).to_have_attribute("data-role", "assistant")
        await expect(messages.nth(i)).to_have_attribute("data-status", "complete")
        await expect(messages.nth(i).locator(".msg-body")).to_have_text("Hello from the assistant.")
    seqs = await messages.evaluate_all("(els) => els.map((e) => Number(e.dataset.seq))")
    assert seqs == [1, 2, 3, 4]

    # Still live after the reload: a new question streams in.
    await send(page, "@assistant again")
    await expect(assistant(page, "complete")).to_have_count(3)


async def test_html_in_messages_renders_as_text(
    server: Parlour, new_page: Any, scripted: ScriptedProvider
) -> None:
    hostile = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <b>bold?</b>'
    scripted.deltas = ["<script>window.__pwned = 3</script>", " <b>not bold</b> ",
                       '<img src=x onerror="window.__pwned = 4">']
    alice, bob = await new_page(), await new_page()
    await sign_up(alice, server, "Erin")
    bob_email = await sign_up(bob, server, "Frank")
    room_id = await create_room(alice, "<script>alert(1)</script>")
    await alice.get_by_role("button", name="Invite").click()
    await alice.get_by_label("Email to invite").fill(bob_email)
    await alice.get_by_role("button", name="Add to room").click()
    link = bob.locator(f'#room-list a[data-room-id="{room_id}"]')
    await expect(link).to_contain_text("<script>alert(1)</script>")
    await link.click()

    await send(bob, hostile)
    await send(alice, "@assistant " + hostile)
    for page in (alice, bob):
        users = page.locator('#message-list li[data-role="user"] .msg-body')
        await expect(users).to_have_count(2)
        await expect(users.nth(0)).to_have_text(hostile)
        done = assistant(page, "complete")
        await expect(done).to_have_count(1)
        await expect(done.locator(".msg-body")).to_contain_text("<script>window.__pwned = 3</script>")
        await expect(done.locator(".msg-body")).to_contain_text("<b>not bold</b>")
        counts = await page.evaluate("""() => {
          const list = document.getElementById('message-list');
          return [list.querySelectorAll('script, img, b').length,
                  document.querySelectorAll('#room-list script').length];
        }""")
        assert counts == [0, 0]
        assert await page.evaluate("window.__pwned") is None



async def test_upload_shows_ingestion_progress_and_sources(
    server: Parlour, new_page: Any, scripted: ScriptedProvider
) -> None:
    fact = "The vault code for Parlour is 7-4-1-9."
    scripted.deltas = ["The ", "vault ", "code ", "is ", "7-4-1-9."]
    page = await new_page()
    await sign_up(page, server, "Grace")
    room_id = await create_room(page, "Vault notes")

    # Record every phase the upload list shows, to check they only move forward.
    await page.evaluate("""() => {
      const seen = window.__phases = [];
      const note = () => {
        const li = document.querySelector('#upload-list li');
        const phase = li && li.dataset.phase;
        if (phase && seen[seen.length - 1] !== phase) seen.push(phase);
      };
      new MutationObserver(note).observe(document.getElementById('upload-list'),
        { childList: true, subtree: true, attributes: true });
    }""")

    # Upload through the page's own button and its file chooser.
    async with page.expect_file_chooser() as chooser_info:
        await page.get_by_role("button", name="Upload").click()
    chooser = await chooser_info.value
    assert chooser.is_multiple()
    await chooser.set_files(
        [{"name": "vault.txt", "mimeType": "text/plain", "buffer": (fact + "\n").encode()}]
    )

    uploads = page.get_by_role("list", name="Uploads")
    await expect(uploads).to_be_visible()
    item = uploads.get_by_role("listitem").filter(has_text="vault.txt")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("Ready: the assistant can use it", timeout=15_000)
    await expect(item.get_by_role("progressbar", name="vault.txt progress")).to_have_attribute(
        "value", "100"
    )
    await expect(uploads.get_by_role("listitem")).to_have_count(1)  # no stray placeholder
    phases = await page.evaluate("window.__phases")
    assert phases[0] == "uploading" and phases[-1] == "ready", phases
    assert phases == sorted(phases, key=["uploading", "processing", "ready"].index), phases

    # The server kept the file, ready (REST, with the page's cookies).
    resp = await page.context.request.get(f"{server.url}/api/v1/chat/{room_id}/files")
    assert resp.ok, await resp.text()
    files = (await resp.json())["files"]
    assert [(f["filename"], f["status"], f["size"]) for f in files] == [
        ("vault.txt", "ready", len(fact) + 1)
    ]

    # Alone in the room: the assistant answers, reading the file, and names it as a source.
    await send(page, "What is the vault code for Parlour?")
    done = assistant(page, "complete")
    await expect(done).to_have_count(1, timeout=15_000)
    await expect(done.locator(".msg-body")).to_have_text("The vault code is 7-4-1-9.")
    assert fact in scripted.prompts[-1][0].content
    sources = done.locator(".msg-sources")
    await expect(sources.locator("summary")).to_have_text("Sources (1)")
    await sources.locator("summary").click()
    await expect(sources.get_by_text("vault.txt", exact=True)).to_be_visible()
    await expect(sources).to_contain_text(fact)


@IDP_WARNINGS
async def test_single_sign_on_from_the_login_page(sso: Parlour, idp: str, new_page: Any) -> None:
    sub = await idp_user(idp, email="ada.sso@example.com", email_verified=True, name="Ada L")
    page = await new_page()

    async def offline(route: Any) -> None:
        await route.abort()

    # The provider's form links a CDN stylesheet: keep the browser off the internet.
    await page.context.route(re.compile(r"^https?://(?!(127\.0\.0\.1|localhost)[:/])"), offline)
    await page.goto(sso.url + "/")
    link = page.locator("#sso").get_by_role("link", name="Continue with Idp")
    await expect(link).to_be_visible()
    await link.click()

    # The provider's own log-in form, in the browser.
    await page.wait_for_url(f"{idp}/oauth2/authorize?**")
    await page.get_by_placeholder("sub").fill(sub)
    await page.get_by_role("button", name="Authorize", exact=True).click()

    # Back on the app, logged in; a reload keeps it so (the refresh cookie).
    for reload in (False, True):
        if reload:
            await page.reload()
        await expect(page.locator("#me-name")).to_have_text("Ada L")
        await expect(page.locator("#me-name")).to_have_attribute(
            "title", "Logged in as ada.sso@example.com"
        )
        assert page.url == sso.url + "/"
        await expect(page.get_by_role("navigation", name="Rooms")).to_be_visible()
        await expect(page.locator("#rooms-empty")).to_be_visible()
        await expect(page.locator("#conn-status")).to_have_text("")  # socket connected


@IDP_WARNINGS
async def test_single_sign_on_links_a_password_account_after_its_password(
    sso: Parlour, idp: str, new_page: Any
) -> None:
    owner = await sso.signup("Grace")
    sub = await idp_user(idp, email=owner.email, email_verified=True, name="Grace H")
    page = await new_page()

    async def offline(route: Any) -> None:
        await route.abort()

    await page.context.route(re.compile(r"^https?://(?!(127\.0\.0\.1|localhost)[:/])"), offline)
    await page.goto(sso.url + "/")
    await page.locator("#sso").get_by_role("link", name="Continue with Idp").click()
    await page.wait_for_url(f"{idp}/oauth2/authorize?**")
    await page.get_by_placeholder("sub").fill(sub)
    await page.get_by_role("button", name="Authorize", exact=True).click()

    # Back on the app: the account's password is asked for before anything is linked.
    await expect(page.locator("#auth-error")).to_contain_text(
        f"An account with {owner.email} already exists"
    )
    await expect(page.get_by_label("Email")).to_have_value(owner.email)
    await page.get_by_label("Password", exact=True).fill("not the password")
    await page.get_by_role("button", name="Link and log in").click()
    await expect(page.locator("#auth-error")).to_have_text(
        "That password does not match the account."
    )
    await page.get_by_label("Password", exact=True).fill("correct horse 1")
    await page.get_by_role("button", name="Link and log in").click()
    await expect(page.locator("#me-name")).to_have_text("Grace")
    assert page.url == sso.url + "/"
