"""Questions asked outside any room: `POST /run` without `chat_id`, `/aisuite/chat`.

They take the same message-size limit as the room path, and `/run` searches the asker's
documents as their private chats do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from app.assistant.ask import AskService
from app.assistant.context import DEFAULT_SYSTEM
from app.config import LimitsSettings
from app.limits import check_message_chars
from app.llm.base import ChatMessage, ChatParams, StreamEvent
from app.models import Principal, Source


class DocumentSearch(Protocol):
    """Retrieval over one user's documents (app.rag.retrieval.RagRetriever)."""

    async def retrieve_documents(self, user_id: str, text: str) -> tuple[list[Source], str]:
        """Sources and the context text for the model."""
        ...


class StatelessAsk:
    """Completions that store nothing, bounded like messages in rooms."""

    def __init__(
        self, limits: LimitsSettings, assistant_name: str, ask: AskService,
        documents: DocumentSearch | None,
    ) -> None:
        self._limits = limits
        self._assistant_name = assistant_name
        self._ask = ask
        self._documents = documents

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], params: ChatParams
    ) -> tuple[str, AsyncIterator[StreamEvent]]:
        """An OpenAI-shaped completion: every message's text counts against the limit."""
        check_message_chars(sum(len(m.content) for m in messages), self._limits, "messages")
        return await self._ask.complete(model, messages, params)

    async def run(
        self, principal: Principal, text: str, model: str | None
    ) -> tuple[str, list[Source], AsyncIterator[StreamEvent]]:
        """One question, answered with the asker's documents when they hold something."""
        check_message_chars(len(text), self._limits, "text")
        sources: list[Source] = []
        context = ""
        if self._documents is not None:
            sources, context = await self._documents.retrieve_documents(principal.user_id, text)
        messages: list[ChatMessage] = []
        if context:
            system = DEFAULT_SYSTEM.format(name=self._assistant_name) + "\n\n" + context
            messages.append(ChatMessage(role="system", content=system))
        messages.append(ChatMessage(role="user", content=text))
        model_id, events = await self._ask.complete(model, messages, ChatParams())
        return model_id, sources, events
