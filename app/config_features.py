"""Settings of the optional features: speech (`[audio]`), voice rooms (`[voice]`), tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator


class Section(BaseModel):
    """A table of the configuration: an unknown key is an error (app.config's too)."""

    model_config = ConfigDict(extra="forbid")


class AudioSettings(Section):
    """Speech: recognition (audio attachments, /audio/transcriptions) and the spoken answer.

    Empty model: `openai:...` when OPENAI_API_KEY is set, else the embedded one if installed.
    """

    stt_model: str = ""
    tts_model: str = ""
    tts_voice: str = ""
    # Characters of one answer spoken at most (the rest is in the text answer).
    max_speech_chars: int = Field(4000, ge=1)
    request_timeout_seconds: float = Field(60.0, gt=0)


class VoiceSettings(Section):
    """Voice rooms (room_type openai_realtime): floor control, bounds, the answering backend."""

    # "auto": the OpenAI Realtime bridge when OPENAI_API_KEY is set, else the embedded
    # pipeline (speech recognition -> the room's model -> speech synthesis).
    backend: Literal["auto", "openai_realtime", "embedded"] = "auto"
    max_turn_seconds: float = Field(60.0, gt=0, le=600)
    # A turn nobody ends (no voice_stop) is dropped this long after max_turn_seconds.
    turn_grace_seconds: float = Field(10.0, ge=0)
    # A room's Realtime session is closed after this long without voice activity.
    idle_seconds: float = Field(60.0, gt=0)
    # The Realtime voice the assistant speaks with.
    voice: str = "alloy"
    # The Realtime model that transcribes the speaker (voice_transcript).
    transcription_model: str = "gpt-4o-mini-transcribe"
    # Seconds to wait for the speaker's transcript after voice_stop.
    transcript_timeout_seconds: float = Field(20.0, gt=0)
    # Replies to typed messages in voice rooms are spoken too (with the embedded or
    # OpenAI voice of [audio], when one is available), as assistant_audio.
    speak_typed_replies: bool = True


# Lower-case, no "__": the name must survive PARLOUR_TOOLS__MCP__<NAME>__KEY, and MCP tools
# are offered to the model as `<server>__<tool>`.
MCPServerName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")]


class GoogleCalendarSettings(Section):
    """The calendar tools: unset `service_account_file` leaves them unconfigured."""

    service_account_file: Path | None = None
    calendar_id: str = "primary"
    api_base_url: str = "https://www.googleapis.com"
    # Domain-wide delegation: act as this user (Google Workspace); unset = the account itself.
    subject: str | None = None


class NotionSettings(Section):
    """The Notion tools; the token comes only from NOTION_TOKEN."""

    base_url: str = "https://api.notion.com"
    parent_page_id: str | None = None


class MCPServerSettings(Section):
    """One MCP server: `command` (stdio) or `url` (streamable HTTP), not both."""

    command: list[str] | None = Field(None, min_length=1)
    url: str | None = None
    env: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("set exactly one of command (stdio) or url (streamable HTTP)")
        return self


class ToolsSettings(Section):
    max_rounds: int = Field(5, ge=1, le=50)
    timeout_seconds: float = Field(20.0, gt=0)
    google_calendar: GoogleCalendarSettings = GoogleCalendarSettings()
    notion: NotionSettings = NotionSettings()
    mcp: dict[MCPServerName, MCPServerSettings] = {}
