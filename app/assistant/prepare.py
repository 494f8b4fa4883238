"""Before a reply streams: its model, its sources and the context that fits the window."""

from __future__ import annotations

import asyncio
from functools import partial

from app.assistant.context import HISTORY_LIMIT, TokenCache, build_context
from app.assistant.policy import Retriever, Searchable
from app.assistant.source import ReplyRequest
from app.config import AssistantSettings, LLMSettings
from app.errors import UNAVAILABLE, AppError
from app.llm.base import ChatParams
from app.llm.registry import ProviderRegistry
from app.media.attachments import ChatAttachments, ModelInput
from app.models import Message, Room, Source
from storage.messages import MessageStore

INLINE_CHARS = 4_000  # new text counted on the event loop; more goes to a thread
NO_PROVIDER = "no LLM provider is configured: set OPENAI_API_KEY or run make install"


class ReplyPreparer:
    """Resolves the model, retrieves sources and builds the prompt of one reply."""

    def __init__(
        self,
        settings: AssistantSettings,
        llm: LLMSettings,
        registry: ProviderRegistry,
        messages: MessageStore,
        retriever: Retriever,
        attachments: ChatAttachments | None = None,
    ) -> None:
        self._settings = settings
        self._llm = llm
        self._registry = registry
        self._messages = messages
        self.retriever = retriever
        self._attachments = attachments
        self._tokens = TokenCache()

    def model_for(self, room: Room, requested: str | None) -> str:
        """The model that answers: the one asked for, the room's, or the default."""
        model_id = requested or room.model or self._registry.default_model()
        if model_id is None:
            raise AppError(UNAVAILABLE, NO_PROVIDER)
        return model_id

    def bare(
        self, room: Room, reply_to: Message, requested_by: str, model_id: str
    ) -> ReplyRequest:
        """A request without a prompt, for a source that keeps its own context."""
        provider, model_name = self._registry.resolve(model_id)
        return ReplyRequest(
            room=room, reply_to=reply_to, requested_by=requested_by, model_id=model_id,
            provider=provider, model=model_name, messages=[],
            params=ChatParams(max_tokens=self._settings.max_output_tokens),
        )

    async def prepare(
        self, room: Room, reply_to: Message, requested_by: str, model_id: str,
        probe: asyncio.Future[Searchable | None] | None = None,
        history: list[Message] | None = None,
    ) -> tuple[ReplyRequest, list[Source]]:
        """The request for the source, and the sources the answer may cite.

        `probe`: what there is to search, asked when the reply was admitted. `history`:
        the turns up to and with `reply_to`, when the caller has them (app/assistant/early.py).
        """
        provider, model_name = self._registry.resolve(model_id)
        if history is None:
            history = await self._messages.page(
                room.room_id, before_seq=reply_to.seq + 1, limit=HISTORY_LIMIT
            )
        info = self._registry.model_info(model_id)
        window = info.context_window if info else self._llm.local_context_window
        max_out = self._settings.max_output_tokens
        budget = max(window - max_out, 256)
        # Recall (an embedding call) only pays off when older turns will not fit:
        # more history than one page, or more text than the budget (~3 chars a token).
        overflows = (len(history) >= HISTORY_LIMIT
                     or sum(len(m.content) for m in history) > budget * 3)
        searchable = None
        if probe is not None:
            try:
                searchable = await probe
            except Exception:  # asked again below (retrieval never fails a reply)
                searchable = None
        sources, sources_text = await self.retriever.retrieve(
            room, reply_to, recall=overflows, searchable=searchable)
        added = ModelInput()
        if reply_to.file_ids and self._attachments is not None:
            # Checked again: the model or the files may have changed since it was sent.
            added = await self._attachments.model_input(room.room_id, reply_to.file_ids, model_id)
        build = partial(
            build_context, room, history, budget_tokens=budget,
            assistant_name=self._settings.name, sources_text=sources_text, cache=self._tokens,
            attached=(reply_to.message_id, added.text, added.images),
        )
        # Token counting is CPU work: off the event loop, unless there is little new text
        # to count (a thread hop costs more than counting a few short turns).
        fresh = sum(len(m.content) for m in history if not self._tokens.knows(m.message_id))
        inline = fresh + len(sources_text) + len(added.text) <= INLINE_CHARS
        prompt = build() if inline else await asyncio.to_thread(build)
        request = ReplyRequest(
            room=room, reply_to=reply_to, requested_by=requested_by, model_id=model_id,
            provider=provider, model=model_name, messages=prompt,
            params=ChatParams(max_tokens=max_out),
        )
        return request, sources
