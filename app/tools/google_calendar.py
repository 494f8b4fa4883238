"""Google Calendar v3 through a service account (google-auth does the token flow)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import httpx
import requests
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from app.config_features import GoogleCalendarSettings
from app.tools.base import BUILTIN, Tool, ToolContext, ToolError, to_json

SCOPES = ("https://www.googleapis.com/auth/calendar",)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_EVENTS = 50
DESCRIPTION_CHARS = 500
UNCONFIGURED = "set tools.google_calendar.service_account_file"


class _TimedRequest(Request):
    """google-auth's requests transport with our timeout on every token request."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        super().__init__(session)
        self._timeout = timeout

    def __call__(
        self, url: str, method: str = "GET", body: Any = None,
        headers: Any = None, timeout: Any = None, **kwargs: Any,
    ) -> Any:
        return super().__call__(  # type: ignore[no-untyped-call]
            url, method, body, headers, timeout=self._timeout, **kwargs
        )


class ServiceAccountTokens:
    """Access tokens for a service account; google-auth's refresh is sync: run in a thread."""

    def __init__(self, key_file: Path, subject: str | None, timeout: float) -> None:
        self._key_file = key_file
        self._subject = subject
        self._timeout = timeout
        self._credentials: service_account.Credentials | None = None
        self._session = requests.Session()
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Read the key file (blocking: call through asyncio.to_thread); ValueError if bad."""
        try:
            credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(self._key_file), scopes=list(SCOPES)
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot use {self._key_file}: {exc}") from exc
        if self._subject:
            credentials = credentials.with_subject(self._subject)
        self._credentials = credentials

    def _refresh(self) -> str:
        assert self._credentials is not None
        self._credentials.refresh(  # type: ignore[no-untyped-call]
            _TimedRequest(self._session, self._timeout)
        )
        return str(self._credentials.token)

    async def token(self) -> str:
        """A valid access token, refreshed (once, off the event loop) when it expires soon."""
        async with self._lock:
            if self._credentials is None:
                await asyncio.to_thread(self.load)
            assert self._credentials is not None
            if self._credentials.valid:
                return str(self._credentials.token)
            try:
                return await asyncio.to_thread(self._refresh)
            except google.auth.exceptions.GoogleAuthError as exc:
                raise ToolError(f"Google refused the service account's token request: {exc}"
                                ) from exc
            except requests.RequestException as exc:
                raise ToolError(f"cannot reach Google's token endpoint: {exc}") from exc

    def close(self) -> None:
        """Close the token endpoint's connection pool."""
        self._session.close()


def _when(value: str, field: str) -> dict[str, str]:
    """A Calendar start/end: a date (all-day) or an RFC 3339 date-time."""
    if DATE.match(value):
        return {"date": value}
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ToolError(f"{field}: expected YYYY-MM-DD or an RFC 3339 date-time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return {"dateTime": moment.isoformat()}


def _rfc3339(value: str, field: str) -> str:
    when = _when(value, field)
    if "date" in when:
        return f"{when['date']}T00:00:00Z"
    return when["dateTime"]


def _event(item: dict[str, Any]) -> dict[str, Any]:
    start, end = item.get("start") or {}, item.get("end") or {}
    event = {
        "id": item.get("id"), "summary": item.get("summary", "(no title)"),
        "start": start.get("dateTime") or start.get("date"),
        "end": end.get("dateTime") or end.get("date"),
        "location": item.get("location"),
        "description": (item.get("description") or "")[:DESCRIPTION_CHARS] or None,
        "attendees": [a.get("email") for a in item.get("attendees") or [] if a.get("email")],
        "link": item.get("htmlLink"),
    }
    return {k: v for k, v in event.items() if v not in (None, [])}


class CalendarTools:
    """`calendar_list_events` and `calendar_create_event`."""

    def __init__(self, settings: GoogleCalendarSettings, timeout: float) -> None:
        self._settings = settings
        self._tokens: ServiceAccountTokens | None = None
        self._http: httpx.AsyncClient | None = None
        if settings.service_account_file is not None:
            self._tokens = ServiceAccountTokens(
                settings.service_account_file, settings.subject, timeout
            )
            self._http = httpx.AsyncClient(base_url=settings.api_base_url, timeout=timeout)
        unconfigured = None if self._tokens is not None else UNCONFIGURED
        self._tools = [
            Tool(
                name="calendar_list_events",
                description=(
                    "List events of the team's Google Calendar, soonest first. Without "
                    "time_min, from now on. Times are RFC 3339 (2025-01-31T09:00:00Z) or dates."
                ),
                parameters={
                    "type": "object",
                    "properties": {
                        "time_min": {"type": "string", "description": "Earliest end time."},
                        "time_max": {"type": "string", "description": "Latest start time."},
                        "query": {"type": "string", "maxLength": 500,
                                  "description": "Words the events must contain."},
                        "max_results": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS},
                    },
                    "additionalProperties": False,
                },
                source=BUILTIN, run=self._list, unconfigured=unconfigured,
            ),
            Tool(
                name="calendar_create_event",
                description=(
                    "Create an event in the team's Google Calendar. start and end are RFC 3339 "
                    "date-times (2025-01-31T09:00:00Z) or dates (YYYY-MM-DD) for all-day events."
                ),
                parameters={
                    "type": "object",
                    "properties": {
                        "summary": {"type": "string", "minLength": 1, "maxLength": 500},
                        "start": {"type": "string"},
                        "end": {"type": "string"},
                        "description": {"type": "string", "maxLength": 8000},
                        "attendees": {"type": "array", "maxItems": 50,
                                      "items": {"type": "string", "format": "email"}},
                    },
                    "required": ["summary", "start", "end"],
                    "additionalProperties": False,
                },
                source=BUILTIN, run=self._create, unconfigured=unconfigured,
            ),
        ]

    def tools(self) -> Sequence[Tool]:
        """Both calendar tools (unconfigured without a service account)."""
        return self._tools

    async def start(self) -> None:
        """Read the key file now, so a bad one stops startup with a clear message."""
        if self._tokens is not None:
            await asyncio.to_thread(self._tokens.load)

    async def close(self) -> None:
        """Close the HTTP clients."""
        if self._http is not None:
            await self._http.aclose()
        if self._tokens is not None:
            await asyncio.to_thread(self._tokens.close)

    def _path(self) -> str:
        return f"/calendar/v3/calendars/{quote(self._settings.calendar_id, safe='')}/events"

    async def _request(self, method: str, params: dict[str, Any] | None = None,
                       body: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._tokens is not None and self._http is not None
        token = await self._tokens.token()
        try:
            response = await self._http.request(
                method, self._path(), params=params, json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise ToolError(f"cannot reach Google Calendar: {exc}") from exc
        if response.status_code >= 400:
            raise ToolError(f"Google Calendar answered {response.status_code}: "
                            f"{_google_error(response)}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ToolError("Google Calendar answered something that is not JSON") from exc
        if not isinstance(data, dict):
            raise ToolError("Google Calendar answered an unexpected shape")
        return data

    async def _list(self, arguments: dict[str, Any], context: ToolContext) -> str:
        params: dict[str, Any] = {
            "singleEvents": "true", "orderBy": "startTime",
            "maxResults": int(arguments.get("max_results") or 10),
            "timeMin": _rfc3339(arguments["time_min"], "time_min")
            if arguments.get("time_min") else datetime.now(UTC).isoformat(),
        }
        if arguments.get("time_max"):
            params["timeMax"] = _rfc3339(arguments["time_max"], "time_max")
        if arguments.get("query"):
            params["q"] = arguments["query"]
        data = await self._request("GET", params=params)
        events = [_event(item) for item in data.get("items") or [] if isinstance(item, dict)]
        return to_json({"calendar": data.get("summary"), "time_zone": data.get("timeZone"),
                        "events": events})

    async def _create(self, arguments: dict[str, Any], context: ToolContext) -> str:
        body: dict[str, Any] = {
            "summary": arguments["summary"],
            "start": _when(arguments["start"], "start"),
            "end": _when(arguments["end"], "end"),
        }
        if arguments.get("description"):
            body["description"] = arguments["description"]
        if arguments.get("attendees"):
            body["attendees"] = [{"email": email} for email in arguments["attendees"]]
        created = await self._request("POST", body=body)
        return to_json({"created": _event(created)})


def _google_error(response: httpx.Response) -> str:
    """The `error.message` of a Google API error body, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    return str(data)[:300]
