"""Notion through its API with `notion-client` (the maintained SDK, on httpx)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import httpx
from notion_client import AsyncClient
from notion_client.errors import HTTPResponseError, NotionClientErrorBase, RequestTimeoutError

from app.config_features import NotionSettings
from app.tools.base import BUILTIN, Tool, ToolContext, ToolError, to_json

TOKEN_ENV = "NOTION_TOKEN"
MAX_RESULTS = 10
TEXT_CHARS = 2000  # Notion's limit for one rich-text item
MAX_BLOCKS = 100  # children in one create request


def _title(item: dict[str, Any]) -> str:
    """The plain-text title of a page or data source."""
    parts = item.get("title")  # data sources and databases
    if not isinstance(parts, list):
        for prop in (item.get("properties") or {}).values():
            if isinstance(prop, dict) and prop.get("type") == "title":
                parts = prop.get("title")
                break
    return "".join(str(p.get("plain_text", "")) for p in parts or [] if isinstance(p, dict))


def _paragraphs(content: str) -> list[dict[str, Any]]:
    """Paragraph blocks of `content`: one per blank-line-separated part, split at 2,000."""
    blocks: list[dict[str, Any]] = []
    for part in (p.strip() for p in content.split("\n\n")):
        for start in range(0, len(part), TEXT_CHARS):
            text = part[start : start + TEXT_CHARS]
            blocks.append({"object": "block", "type": "paragraph", "paragraph": {
                "rich_text": [{"type": "text", "text": {"content": text}}],
            }})
    return blocks[:MAX_BLOCKS]


class NotionTools:
    """`notion_search` and `notion_create_page`."""

    def __init__(self, settings: NotionSettings, timeout: float) -> None:
        self._settings = settings
        token = os.environ.get(TOKEN_ENV)
        self._client: AsyncClient | None = None
        if token:
            # No retries: a slow or failing Notion gives the model an error it can act on,
            # within the tool's timeout.
            self._client = AsyncClient(
                auth=token, base_url=settings.base_url.rstrip("/"),
                timeout_ms=int(timeout * 1000), retry=False,
                logger=logging.getLogger("notion_client"),
            )
        no_token = None if token else f"set {TOKEN_ENV}"
        no_parent = no_token or (
            None if settings.parent_page_id else "set tools.notion.parent_page_id"
        )
        self._tools = [
            Tool(
                name="notion_search",
                description="Search the Notion pages shared with the integration, by title.",
                parameters={
                    "type": "object",
                    "properties": {"query": {"type": "string", "maxLength": 500}},
                    "required": ["query"],
                    "additionalProperties": False,
                },
                source=BUILTIN, run=self._search, unconfigured=no_token,
            ),
            Tool(
                name="notion_create_page",
                description=(
                    "Create a Notion page with a title and plain-text content (paragraphs "
                    "separated by blank lines). Returns its URL."
                ),
                parameters={
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": 2000},
                        "content": {"type": "string", "maxLength": 100_000},
                    },
                    "required": ["title", "content"],
                    "additionalProperties": False,
                },
                source=BUILTIN, run=self._create, unconfigured=no_parent,
            ),
        ]

    def tools(self) -> Sequence[Tool]:
        """Both Notion tools."""
        return self._tools

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            await self._client.aclose()

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._client is not None
        try:
            data = await self._client.request(path=path, method="POST", body=body)
        except HTTPResponseError as exc:
            code = getattr(exc.code, "value", exc.code)
            raise ToolError(f"Notion answered {exc.status} ({code}): {exc}") from exc
        except RequestTimeoutError as exc:
            raise ToolError("Notion did not answer in time") from exc
        except (NotionClientErrorBase, httpx.HTTPError) as exc:
            raise ToolError(f"cannot reach Notion: {exc}") from exc
        if not isinstance(data, dict):
            raise ToolError("Notion answered an unexpected shape")
        return data

    async def _search(self, arguments: dict[str, Any], context: ToolContext) -> str:
        data = await self._call("search", {"query": arguments["query"],
                                           "page_size": MAX_RESULTS})
        results = [
            {"id": item.get("id"), "type": item.get("object"), "title": _title(item),
             "url": item.get("url"), "last_edited": item.get("last_edited_time")}
            for item in data.get("results") or [] if isinstance(item, dict)
        ]
        return to_json({"results": results})

    async def _create(self, arguments: dict[str, Any], context: ToolContext) -> str:
        body = {
            "parent": {"page_id": self._settings.parent_page_id},
            "properties": {"title": {"title": [
                {"type": "text", "text": {"content": arguments["title"]}},
            ]}},
            "children": _paragraphs(arguments["content"]),
        }
        page = await self._call("pages", body)
        return to_json({"created": {"id": page.get("id"), "url": page.get("url"),
                                    "title": arguments["title"]}})
