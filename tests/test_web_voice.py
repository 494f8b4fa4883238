"""The browser client in a voice room: push-to-talk with Chromium's fake microphone.

Chromium plays a generated WAV as the microphone (--use-fake-device-for-media-stream
--use-file-for-fake-audio-capture); the server answers with the embedded pipeline (a
scripted recogniser and voice, tests/speech_stub.py, and the scripted model).
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.client import Parlour, start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.speech_stub import ScriptedSpeech, tone
from tests.web_fixtures import (
    CHROMIUM,
    CHROMIUM_ARGS,
    axe_violations,
    invite,
    needs_chromium,
    pages_of,
    sign_up,
    web_settings,
)

pytestmark = needs_chromium

ANSWER = ["It is sunny. ", "Take a hat."]


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WAV the fake microphone plays: a 440 Hz tone, 48 kHz mono."""
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48_000)
        wav.writeframes(tone(3.0, rate=48_000))
    return path


@pytest.fixture(scope="module")
async def voice_browser(microphone: Path) -> AsyncIterator[Browser]:
    """Chromium with a fake microphone, no permission prompt, audio without a gesture."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            "--autoplay-policy=no-user-gesture-required",
        ])
        yield browser
        await browser.close()


@pytest.fixture
async def voice_pages(voice_browser: Browser) -> AsyncIterator[Any]:
    async with pages_of(voice_browser) as make:
        yield make


@pytest.fixture(scope="module")
def speech() -> ScriptedSpeech:
    return ScriptedSpeech()


@pytest.fixture(scope="module")
async def voice_server(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory,
                       speech: ScriptedSpeech) -> AsyncIterator[Parlour]:
    settings = web_settings(mongo_uri, tmp_path_factory, "webvoice")
    provider = ScriptedProvider(deltas=ANSWER, delay=0.02)
    server = await start_parlour(settings, providers={"scripted": provider}, speech=speech)
    yield server
    await server.close()


async def test_two_people_in_a_voice_room_hear_the_assistant(
    voice_server: Parlour, voice_pages: Any, speech: ScriptedSpeech
) -> None:
    alice, bob = await voice_pages(), await voice_pages()
    await sign_up(alice, voice_server, "Alice")
    bob_email = await sign_up(bob, voice_server, "Bob")
    await alice.get_by_role("button", name="New voice room").click()
    await expect(alice.locator("#voice-bar")).to_be_visible()
    room_id = alice.url.split("#/room/", 1)[1].split("/")[0]
    await invite(alice, bob_email)
    link = bob.locator(f'#room-list a[data-room-id="{room_id}"]')
    await link.click()
    await expect(bob.locator("#online-list")).to_contain_text("Alice")
    await expect(bob.locator("#voice-status")).to_have_text(
        "Hold the button (or press Space on it) to talk.")
    found = await axe_violations(bob)
    assert found == [], f"the voice room: {found}"

    # Alice holds the button and talks for a second.
    talk = alice.get_by_role("button", name="Hold to talk")
    await talk.hover()
    await alice.mouse.down()
    await expect(alice.locator("#talk-btn")).to_have_text("Release to send")
    await expect(bob.locator("#voice-status")).to_have_text("Alice is speaking…")
    await expect(bob.get_by_role("button", name="Hold to talk")).to_be_disabled()
    await alice.wait_for_timeout(1200)
    await alice.mouse.up()

    # Both see the transcript and the answer; Bob's page received the answer's audio.
    for page in (alice, bob):
        messages = page.locator("#message-list")
        await expect(messages).to_contain_text("what is the weather like", timeout=10_000)
        await expect(messages).to_contain_text("It is sunny. Take a hat.", timeout=10_000)
        await expect(page.locator("#voice-status")).to_have_text(
            "Hold the button (or press Space on it) to talk.", timeout=10_000)
    chunks = int(await bob.locator("#voice-bar").get_attribute("data-audio-chunks") or 0)
    assert chunks > 0
    # The server heard about a second of PCM16 24 kHz from the fake microphone.
    heard = speech.heard[-1]
    assert 0.8 * 48_000 < len(heard) < 2.0 * 48_000 and len(heard) % 2 == 0
    assert any(heard[i:i + 2] != b"\0\0" for i in range(0, len(heard), 2))

    # Bob takes a turn with the keyboard: Space to start, Space to send.
    bob_talk = bob.locator("#talk-btn")
    await bob_talk.focus()
    await bob.keyboard.press("Space")
    await expect(alice.locator("#voice-status")).to_have_text("Bob is speaking…")
    await bob.wait_for_timeout(600)
    await bob.keyboard.press("Space")
    await expect(alice.locator("#message-list .msg")).to_have_count(4, timeout=10_000)
    assert len(speech.heard) >= 2
