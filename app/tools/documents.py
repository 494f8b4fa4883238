"""`search_documents`: retrieval as a tool, with automatic retrieval's isolation rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from app.models import Room, Source
from app.tools.base import BUILTIN, Tool, ToolContext, to_json

SNIPPET_CHARS = 1_500
MAX_TOP_K = 20


class DocumentSearch(Protocol):
    """The retriever's search (app.rag.retrieval.RagRetriever.search)."""

    async def search(self, room: Room, asker_id: str, query: str, top_k: int) -> list[Source]:
        """Chunks of the room's files and, in the asker's private chat, their documents."""
        ...


class DocumentTools:
    """The `search_documents` tool over a retriever (unconfigured without one)."""

    def __init__(self, search: DocumentSearch | None, default_top_k: int) -> None:
        self._search = search
        self._default_top_k = default_top_k
        self._tool = Tool(
            name="search_documents",
            description=(
                "Search the files shared in this chat (and, in a private chat, the user's own "
                "documents). Returns the best matching excerpts with their file names."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 2000,
                              "description": "What to look for, in words."},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K,
                              "description": "How many excerpts to return (default 5)."},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            source=BUILTIN,
            run=self._run,
            unconfigured=None if search is not None else "retrieval is not running",
        )

    def tools(self) -> Sequence[Tool]:
        """The one tool."""
        return [self._tool]

    async def _run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        assert self._search is not None  # the registry runs configured tools only
        top_k = int(arguments.get("top_k") or self._default_top_k)
        sources = await self._search.search(
            context.room, context.asker_id, str(arguments["query"]), top_k
        )
        if not sources:
            return to_json({"results": [], "note": "no matching excerpts"})
        return to_json({"results": [
            {"n": n, "filename": s.filename, "document_id": s.document_id,
             "chunk_index": s.chunk_index, "score": s.score,
             "text": s.snippet[:SNIPPET_CHARS]}
            for n, s in enumerate(sources, start=1)
        ]})
