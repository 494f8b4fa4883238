"""Calendar and Notion tools against loopback fakes of Google (token + Calendar v3) and Notion."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.config_features import GoogleCalendarSettings, NotionSettings
from app.llm.base import ToolCall
from app.tools.base import Tool, ToolContext, ToolError
from app.tools.google_calendar import CalendarTools
from app.tools.notion import NotionTools
from tests.test_tool_loop import ROOM
from tests.tool_stubs import GOOGLE_TOKEN_AUDIENCE, FakeGoogle, FakeNotion, serve

CTX = ToolContext(ROOM, "u1")


def by_name(tools: Any, name: str) -> Tool:
    return next(t for t in tools.tools() if t.name == name)


@pytest.fixture
async def google(tmp_path: Path) -> AsyncIterator[tuple[FakeGoogle, CalendarTools]]:
    fake = FakeGoogle()
    async with serve(fake.app()) as url:
        fake.url = url
        settings = GoogleCalendarSettings(
            service_account_file=fake.key_file(tmp_path), calendar_id="team@example.com",
            api_base_url=url,
        )
        tools = CalendarTools(settings, timeout=5)
        await tools.start()
        yield fake, tools
        await tools.close()


def event(summary: str, start: datetime, hours: float = 1) -> dict[str, Any]:
    return {"id": summary, "summary": summary,
            "start": {"dateTime": start.isoformat()},
            "end": {"dateTime": (start + timedelta(hours=hours)).isoformat()}}


async def test_list_events_uses_a_service_account_token_from_the_key_files_token_uri(
    google: tuple[FakeGoogle, CalendarTools],
) -> None:
    fake, tools = google
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=0, second=0,
                                                                microsecond=0)
    fake.events += [event("Standup", tomorrow), event("Review", tomorrow + timedelta(hours=5)),
                    event("Next week", tomorrow + timedelta(days=7))]
    day = tomorrow.date().isoformat()
    after = (tomorrow.date() + timedelta(days=1)).isoformat()
    listing = by_name(tools, "calendar_list_events")

    first = json.loads(await listing.run({"time_min": day, "time_max": after}, CTX))
    second = json.loads(await listing.run({"time_min": day, "time_max": after,
                                           "query": "review"}, CTX))

    assert [e["summary"] for e in first["events"]] == ["Standup", "Review"]
    assert first["calendar"] == "team@example.com"
    assert [e["summary"] for e in second["events"]] == ["Review"]
    # One token for both calls, obtained with a JWT assertion signed by the key file.
    assert len(fake.token_requests) == 1
    claims = fake.token_requests[0]
    assert claims["iss"] == fake.email and claims["aud"] == GOOGLE_TOKEN_AUDIENCE
    assert "https://www.googleapis.com/auth/calendar" in claims["scope"]
    assert fake.calendar_requests[0].query["singleEvents"] == "true"
    assert fake.calendar_requests[0].match_info["calendar"] == "team@example.com"


async def test_create_event_then_list_it(google: tuple[FakeGoogle, CalendarTools]) -> None:
    fake, tools = google
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    created = json.loads(await by_name(tools, "calendar_create_event").run({
        "summary": "Planning", "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "description": "Q3", "attendees": ["a@example.com"],
    }, CTX))
    assert created["created"]["summary"] == "Planning"
    assert fake.events[0]["attendees"] == [{"email": "a@example.com"}]
    all_day = json.loads(await by_name(tools, "calendar_create_event").run(
        {"summary": "Offsite", "start": "2031-05-01", "end": "2031-05-02"}, CTX))
    assert all_day["created"]["start"] == "2031-05-01"
    listed = json.loads(await by_name(tools, "calendar_list_events").run({}, CTX))
    assert [e["summary"] for e in listed["events"]] == ["Planning", "Offsite"]


@pytest.mark.parametrize("status", [403, 500, 503])
async def test_calendar_errors_are_tool_errors_with_googles_message(
    google: tuple[FakeGoogle, CalendarTools], status: int
) -> None:
    fake, tools = google
    fake.fail_status = status
    with pytest.raises(ToolError, match=f"Google Calendar answered {status}: The service"):
        await by_name(tools, "calendar_list_events").run({}, CTX)


async def test_a_refused_token_request_is_a_tool_error(tmp_path: Path) -> None:
    fake = FakeGoogle()
    async with serve(fake.app()) as url:
        fake.url = url
        key = fake.key_file(tmp_path)
        fake.email = "someone-else@example.com"  # the assertion's issuer no longer matches
        tools = CalendarTools(GoogleCalendarSettings(service_account_file=key, api_base_url=url),
                              timeout=5)
        await tools.start()
        try:
            with pytest.raises(ToolError, match="refused the service account's token request"):
                await by_name(tools, "calendar_list_events").run({}, CTX)
        finally:
            await tools.close()


async def test_bad_dates_are_tool_errors(google: tuple[FakeGoogle, CalendarTools]) -> None:
    _, tools = google
    with pytest.raises(ToolError, match="start: expected YYYY-MM-DD or an RFC 3339"):
        await by_name(tools, "calendar_create_event").run(
            {"summary": "x", "start": "next tuesday", "end": "2031-01-01"}, CTX)


async def test_calendar_without_a_key_file_is_unconfigured() -> None:
    tools = CalendarTools(GoogleCalendarSettings(), timeout=5)
    assert [(t.name, t.configured, t.unconfigured) for t in tools.tools()] == [
        ("calendar_list_events", False, "set tools.google_calendar.service_account_file"),
        ("calendar_create_event", False, "set tools.google_calendar.service_account_file"),
    ]
    await tools.close()


async def test_a_missing_key_file_stops_startup(tmp_path: Path) -> None:
    tools = CalendarTools(GoogleCalendarSettings(service_account_file=tmp_path / "nope.json"), 5)
    with pytest.raises(ValueError, match=r"nope\.json"):
        await tools.start()
    await tools.close()


@pytest.fixture
async def notion(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeNotion, NotionTools]]:
    fake = FakeNotion()
    monkeypatch.setenv("NOTION_TOKEN", fake.token)
    async with serve(fake.app()) as url:
        tools = NotionTools(NotionSettings(base_url=url, parent_page_id="parent-1"), timeout=5)
        yield fake, tools
        await tools.close()


async def test_notion_create_page_then_search_finds_it(
    notion: tuple[FakeNotion, NotionTools],
) -> None:
    fake, tools = notion
    content = "First paragraph.\n\n" + "y" * 4500
    created = json.loads(await by_name(tools, "notion_create_page").run(
        {"title": "Meeting notes", "content": content}, CTX))
    assert created["created"]["url"].startswith("https://www.notion.so/")
    page = fake.pages[0]
    assert page["parent"] == {"page_id": "parent-1"}
    texts = [b["paragraph"]["rich_text"][0]["text"]["content"] for b in page["children"]]
    assert texts[0] == "First paragraph." and [len(t) for t in texts[1:]] == [2000, 2000, 500]

    found = json.loads(await by_name(tools, "notion_search").run({"query": "meeting"}, CTX))
    assert found["results"] == [{"id": page["id"], "type": "page", "title": "Meeting notes",
                                 "url": page["url"], "last_edited": page["last_edited_time"]}]


@pytest.mark.parametrize(("status", "code"), [(503, "service_unavailable"), (401, "unauthorized")])
async def test_notion_errors_are_tool_errors(
    notion: tuple[FakeNotion, NotionTools], monkeypatch: pytest.MonkeyPatch, status: int,
    code: str,
) -> None:
    fake, tools = notion
    if status == 401:
        fake.token = "rotated"
    else:
        fake.fail_status = status
    with pytest.raises(ToolError, match=f"Notion answered {status} \\({code}\\)"):
        await by_name(tools, "notion_search").run({"query": "x"}, CTX)


async def test_notion_configuration_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTION_TOKEN", raising=False)
    tools = NotionTools(NotionSettings(), timeout=5)
    assert [(t.name, t.unconfigured) for t in tools.tools()] == [
        ("notion_search", "set NOTION_TOKEN"), ("notion_create_page", "set NOTION_TOKEN")]
    monkeypatch.setenv("NOTION_TOKEN", "t")
    tools = NotionTools(NotionSettings(), timeout=5)
    assert [(t.name, t.unconfigured) for t in tools.tools()] == [
        ("notion_search", None), ("notion_create_page", "set tools.notion.parent_page_id")]
    await tools.close()


async def test_a_slow_calendar_times_out_through_the_registry(
    google: tuple[FakeGoogle, CalendarTools],
) -> None:
    from app.config_features import ToolsSettings
    from app.tools.registry import ToolRegistry

    fake, tools = google
    fake.delay = 2.0
    registry = ToolRegistry(ToolsSettings(timeout_seconds=0.3), [tools])
    result = await registry.for_room(["calendar_list_events"], CTX).call(
        ToolCall("c1", "calendar_list_events", "{}"))
    assert result.status == "error" and "timed out after 0.3 s" in result.content
