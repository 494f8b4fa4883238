"""The OpenAI-compatible gateway (`/v1`): models, chat completions, embeddings.

Every call is the caller's: the message rate limit, the admission gate (concurrency and
daily budget) and the usage ledger apply as on every other path; with a personal API key
the ledger also records the key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app.assistant.accounting import Accounting, UsageEntry
from app.assistant.admission import AdmissionGate
from app.assistant.completion import RECORD_TIMEOUT, Completion
from app.config import EmbeddingSettings, LimitsSettings
from app.errors import PAYLOAD_TOO_LARGE, AppError, invalid, rate_limited
from app.limits import check_message_chars
from app.llm.registry import ProviderRegistry
from app.llm.tokens import count_tokens
from app.models import Principal, Usage
from app.openai_api import ChatCompletionRequest, EmbeddingRequest, ModelNotFound, to_chat
from app.rag.embeddings import Embedder
from app.stateless import StatelessAsk
from storage.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS = 2048
LOCAL_EMBEDDING_MODEL = "local:all-MiniLM-L6-v2"


def embedding_model_id(settings: EmbeddingSettings) -> str:
    """The `provider:model` id of the configured embedding backend."""
    if settings.backend == "local":
        return LOCAL_EMBEDDING_MODEL
    return f"openai:{settings.model}"


class GatewayService:
    """What the `/v1` routes call; knows nothing of HTTP."""

    def __init__(
        self,
        limits: LimitsSettings,
        registry: ProviderRegistry,
        stateless: StatelessAsk,
        gate: AdmissionGate,
        accounting: Accounting,
        limiter: RateLimiter,
        embedder: Embedder,
        embedding_model: str,
    ) -> None:
        self._limits = limits
        self._registry = registry
        self._stateless = stateless
        self._gate = gate
        self._accounting = accounting
        self._limiter = limiter
        self._embedder = embedder
        self.embedding_model = embedding_model

    # -- models ---------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """The models this server can answer with, in OpenAI's `model` shape."""
        entries: dict[str, dict[str, Any]] = {}
        for info in self._registry.models.models():
            if self._registry.is_available(info.provider):
                entries[info.id] = {
                    "id": info.id, "object": "model", "created": 0, "owned_by": info.provider,
                    "name": info.name, "context_window": info.context_window,
                }
        default = self._registry.default_model()
        provider = (default or "").partition(":")[0]
        if default is not None and default not in entries \
                and self._registry.is_available(provider):
            entries[default] = {"id": default, "object": "model", "created": 0,
                                "owned_by": provider, "name": default}
        entries[self.embedding_model] = {
            "id": self.embedding_model, "object": "model", "created": 0,
            "owned_by": self.embedding_model.partition(":")[0], "name": self.embedding_model,
            "dimensions": self._embedder.dimensions,
        }
        return list(entries.values())

    def model(self, model_id: str) -> dict[str, Any]:
        """One model of `models()`, or `ModelNotFound`."""
        for entry in self.models():
            if entry["id"] == model_id:
                return entry
        raise ModelNotFound(f"the model {model_id!r} does not exist here; see GET /v1/models")

    def chat_model(self, requested: str) -> str:
        """The `provider:model` id to call for a request's `model`, or `ModelNotFound`.

        A bare name (`gpt-4o-mini`, `smollm2`) is accepted when exactly one available
        catalog model has it.
        """
        if ":" not in requested:
            found = [m.id for m in self._registry.models.models()
                     if m.id.partition(":")[2] == requested
                     and self._registry.is_available(m.provider)]
            if len(found) != 1:
                raise ModelNotFound(
                    f"the model {requested!r} does not exist here: use a 'provider:model' id "
                    "from GET /v1/models"
                )
            return found[0]
        if requested == self.embedding_model:
            raise invalid("model: an embedding model; use POST /v1/embeddings")
        try:
            self._registry.resolve(requested)
        except AppError as exc:
            raise ModelNotFound(f"the model {requested!r} is not available: {exc.message}") \
                from exc
        return requested

    # -- calls ----------------------------------------------------------------------------

    async def _count_call(self, principal: Principal) -> None:
        """The per-user message rate (`limits.messages_per_minute`), shared with rooms."""
        limit = self._limits.messages_per_minute
        if not await self._limiter.hit(f"msg:{principal.user_id}", limit, 60):
            raise rate_limited(f"more than {limit} requests a minute; slow down", 60)

    @asynccontextmanager
    async def chat(
        self, principal: Principal, req: ChatCompletionRequest
    ) -> AsyncIterator[Completion]:
        """An admitted completion for an OpenAI request (read `run.events`)."""
        model_id = self.chat_model(req.model)
        messages, params = to_chat(req)
        await self._count_call(principal)
        async with self._stateless.chat(
            principal, model_id, messages, params, kind="gateway"
        ) as run:
            yield run

    async def embed(
        self, principal: Principal, req: EmbeddingRequest
    ) -> tuple[list[list[float]], int]:
        """Vectors of the request's texts and the tokens they count; admitted and recorded."""
        if req.model not in (self.embedding_model, self.embedding_model.partition(":")[2]):
            raise ModelNotFound(
                f"the embedding model here is {self.embedding_model!r} (got {req.model!r})"
            )
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise invalid(f"input: between 1 and {MAX_EMBEDDING_INPUTS} texts")
        for index, text in enumerate(texts):
            check_message_chars(len(text), self._limits, f"input.{index}")
        if sum(len(t) for t in texts) > self._limits.max_message_chars * 64:
            raise AppError(PAYLOAD_TOO_LARGE, "input: too much text in one request")
        if req.dimensions is not None and req.dimensions != self._embedder.dimensions:
            raise invalid(f"dimensions: this model gives {self._embedder.dimensions}")
        await self._count_call(principal)
        async with self._gate.admitted(principal.user_id, kind="embeddings"):
            started = time.perf_counter()
            status = "error"
            tokens = 0
            try:
                vectors = await self._embedder.embed(texts)
                tokens = await asyncio.to_thread(lambda: sum(count_tokens(t) for t in texts))
                status = "complete"
            finally:
                await self._record(principal, tokens, started, status)
        return vectors, tokens

    async def _record(
        self, principal: Principal, tokens: int, started: float, status: str
    ) -> None:
        entry = UsageEntry(
            user_id=principal.user_id, path="embeddings", model=self.embedding_model,
            usage=Usage(input_tokens=tokens), status=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 1), ttft_ms=None,
            finish_reason="stop" if status == "complete" else "error",
            key_id=principal.key_id,
        )
        self._accounting.count(entry)
        try:
            async with asyncio.timeout(RECORD_TIMEOUT):
                await self._accounting.charge(entry)
                await self._accounting.log(entry)
        except Exception:
            log.warning("gateway: recording embedding usage failed", exc_info=True)
