"""Questions asked outside any room: `POST /run` without `chat_id`, `/aisuite/chat`.

They take the same message-size limit as the room path, and `/run` searches the asker's
documents as their private chats do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from app.assistant.completion import Completion, CompletionService
from app.assistant.context import DEFAULT_SYSTEM
from app.config import LimitsSettings
from app.errors import UNAVAILABLE, AppError
from app.limits import check_message_chars
from app.llm.base import ChatMessage, ChatParams
from app.media.attachments import Attachment, AttachmentReader, ModelInput
from app.models import Principal, Source


class DocumentSearch(Protocol):
    """Retrieval over one user's documents (app.rag.retrieval.RagRetriever)."""

    async def retrieve_documents(self, user_id: str, text: str) -> tuple[list[Source], str]:
        """Sources and the context text for the model."""
        ...


class StatelessAsk:
    """Completions that store nothing, bounded and admitted like messages in rooms."""

    def __init__(
        self, limits: LimitsSettings, assistant_name: str, completions: CompletionService,
        documents: DocumentSearch | None, reader: AttachmentReader | None = None,
    ) -> None:
        self._limits = limits
        self._assistant_name = assistant_name
        self._completions = completions
        self._documents = documents
        self._reader = reader

    @asynccontextmanager
    async def chat(
        self, principal: Principal, model: str, messages: Sequence[ChatMessage],
        params: ChatParams,
    ) -> AsyncIterator[Completion]:
        """An OpenAI-shaped completion: every message's text counts against the limit."""
        check_message_chars(sum(len(m.content) for m in messages), self._limits, "messages")
        async with self._completions.open(principal.user_id, model, kind="aisuite") as run:
            run.start(messages, params)
            yield run

    @asynccontextmanager
    async def run(
        self, principal: Principal, text: str, model: str | None,
        attachments: Sequence[Attachment] = (),
    ) -> AsyncIterator[Completion]:
        """One question, answered with the asker's documents when they hold something.

        Admitted first: a refused call searches nothing and reads no attachment.
        `run.sources` are the cited ones.
        """
        check_message_chars(len(text), self._limits, "text")
        async with self._completions.open(principal.user_id, model, kind="run") as run:
            added = ModelInput()
            if attachments:
                if self._reader is None:
                    raise AppError(UNAVAILABLE, "attachments are not supported here")
                added = await self._reader.read(attachments, run.model_id)
            sources: list[Source] = []
            context = ""
            question = (text or added.text)[:4000]
            if self._documents is not None and question.strip():
                sources, context = await self._documents.retrieve_documents(
                    principal.user_id, question
                )
            messages: list[ChatMessage] = []
            if context:
                system = DEFAULT_SYSTEM.format(name=self._assistant_name) + "\n\n" + context
                messages.append(ChatMessage(role="system", content=system))
            content = f"{text}\n\n{added.text}".strip() if added.text else text
            messages.append(ChatMessage(role="user", content=content, images=added.images))
            run.start(messages, ChatParams(), sources)
            yield run
