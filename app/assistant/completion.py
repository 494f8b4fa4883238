"""Stateless completions (`/run` without a chat, `/aisuite/chat`): admitted, then recorded.

The caller's task owns the completion: `async with completions.open(user, model,
kind=...) as run:` takes a running slot (or raises `rate_limited` before anything is
sent), `run.start(messages, params)` sends the prompt, `run.events` streams the answer;
when the block ends, however it ends, the usage is recorded (ledger, daily tokens,
Prometheus) and the slot given back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager

from app.assistant.accounting import Accounting, UsageEntry
from app.assistant.admission import AdmissionGate
from app.config import AssistantSettings
from app.errors import UNAVAILABLE, AppError, error_from_exception
from app.llm.base import ChatMessage, ChatParams, Provider, StreamEnd, StreamEvent
from app.llm.registry import ProviderRegistry
from app.models import Source, Usage

log = logging.getLogger(__name__)

RECORD_TIMEOUT = 5.0


class Completion:
    """One admitted completion: `start` streams it; notes what its usage record needs."""

    def __init__(self, model_id: str, provider: Provider, model: str, max_tokens: int) -> None:
        self.model_id = model_id
        self._provider = provider
        self._model = model
        self._max_tokens = max_tokens
        self._events: AsyncGenerator[StreamEvent, None] | None = None
        self._parts: list[str] = []
        self.prompt: list[ChatMessage] = []
        self.sources: list[Source] = []
        self.end: StreamEnd | None = None
        self.error: AppError | None = None
        self.finished = False
        self.started_at = time.perf_counter()
        self.first_token_at: float | None = None

    def start(
        self, messages: Sequence[ChatMessage], params: ChatParams, sources: Sequence[Source] = ()
    ) -> None:
        """Send the prompt (the reply length defaults to assistant.max_output_tokens)."""
        if params.max_tokens is None:
            params = dataclasses.replace(params, max_tokens=self._max_tokens)
        self.prompt, self.sources = list(messages), list(sources)
        self.started_at = time.perf_counter()
        self._events = self._read(self._provider.stream_chat(messages, self._model, params))

    @property
    def started(self) -> bool:
        return self._events is not None

    @property
    def events(self) -> AsyncGenerator[StreamEvent, None]:
        """The provider's events, as they come (read them once)."""
        if self._events is None:
            raise RuntimeError("start() first")
        return self._events

    async def _read(self, source: AsyncIterator[StreamEvent]) -> AsyncGenerator[StreamEvent, None]:
        try:
            async for event in source:
                if isinstance(event, StreamEnd):
                    self.end = event
                    self.finished = True  # the last event of every stream
                else:
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                    self._parts.append(event.text)
                yield event
        except Exception as exc:
            self.error = error_from_exception(exc)
            raise
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)


class CompletionService:
    """Opens admitted completions and records their usage."""

    def __init__(
        self,
        settings: AssistantSettings,
        registry: ProviderRegistry,
        gate: AdmissionGate,
        accounting: Accounting,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._gate = gate
        self._accounting = accounting

    @asynccontextmanager
    async def open(
        self, user_id: str, model: str | None, *, kind: str, key_id: str | None = None
    ) -> AsyncIterator[Completion]:
        """Admit a call for `user_id` (or raise); its usage is recorded when the block ends.

        Nothing is sent until `Completion.start`, so whatever the prompt needs (retrieval)
        runs after admission.
        """
        model_id = model or self._registry.default_model()
        if model_id is None:
            raise AppError(UNAVAILABLE, "no LLM provider is configured")
        provider, name = self._registry.resolve(model_id)
        async with self._gate.admitted(user_id, kind=kind):
            run = Completion(model_id, provider, name, self._settings.max_output_tokens)
            try:
                yield run
            finally:
                if run.started:
                    try:
                        await run.events.aclose()
                    finally:
                        await self._record(user_id, kind, run, key_id)

    async def _record(
        self, user_id: str, kind: str, run: Completion, key_id: str | None = None
    ) -> None:
        finish: str
        if run.finished:
            status, finish = "complete", run.end.finish_reason if run.end else "stop"
        elif run.error is not None:
            status, finish = "error", "error"
        else:
            status, finish = "cancelled", "cancelled"  # the client went away
        reported = [run.end.usage] if run.end is not None else []
        usage = await self._attempt(
            "usage", self._accounting.usage(run.model_id, reported, run.prompt, run.text)
        ) or Usage()
        now = time.perf_counter()
        ttft = run.first_token_at
        entry = UsageEntry(
            user_id=user_id, path=kind, model=run.model_id, usage=usage,
            latency_ms=round((now - run.started_at) * 1000, 1),
            ttft_ms=round((ttft - run.started_at) * 1000, 1) if ttft is not None else None,
            status=status, finish_reason=finish, key_id=key_id,
        )
        self._accounting.count(entry)
        await self._attempt("daily tokens", self._accounting.charge(entry))
        await self._attempt("usage ledger", self._accounting.log(entry))

    async def _attempt(self, what: str, step: Awaitable[Usage | None]) -> Usage | None:
        try:
            async with asyncio.timeout(RECORD_TIMEOUT):
                return await step
        except Exception:
            log.warning("completion: recording %s failed", what, exc_info=True)
            return None
