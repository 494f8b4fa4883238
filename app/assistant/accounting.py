"""Usage of every reply and completion: cost, Prometheus, the daily budget, the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from app.assistant.admission import DAY, tokens_key
from app.ids import new_id
from app.llm.base import ChatMessage, TokenUsage
from app.llm.registry import ProviderRegistry
from app.llm.tokens import count_messages, count_tokens
from app.metrics import Metrics
from app.models import Usage, utcnow
from storage.ratelimit import RateLimiter
from storage.usage import UsageStore


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """What one reply or completion cost, and how it went."""

    user_id: str
    path: str  # the admission kind: message, regenerate, run, ws, aisuite, ...
    model: str
    usage: Usage
    latency_ms: float
    ttft_ms: float | None
    status: str  # complete, cancelled, error
    finish_reason: str
    room_id: str | None = None
    message_id: str | None = None


class Accounting:
    """Turns token counts into usage and records it everywhere it is counted."""

    def __init__(
        self,
        registry: ProviderRegistry,
        metrics: Metrics,
        limiter: RateLimiter,
        ledger: UsageStore,
    ) -> None:
        self._registry = registry
        self._metrics = metrics
        self._limiter = limiter
        self._ledger = ledger

    async def usage(
        self,
        model_id: str,
        reported: Sequence[TokenUsage],
        prompt: Sequence[ChatMessage],
        output: str,
    ) -> Usage:
        """The usage of a call: what the provider reported, else counted here.

        A call cut off before the provider reported usage is counted from the prompt sent
        and the text received (token counting runs off the event loop).
        """
        if reported:
            tokens = TokenUsage(
                sum(u.input_tokens for u in reported),
                sum(u.output_tokens for u in reported),
                sum(u.cached_tokens for u in reported),
                sum(u.audio_input_tokens for u in reported),
                sum(u.audio_output_tokens for u in reported),
            )
        else:
            tokens = TokenUsage(
                await asyncio.to_thread(count_messages, list(prompt)),
                await asyncio.to_thread(count_tokens, output),
            )
        return Usage(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens,
                      cached_tokens=tokens.cached_tokens,
                      cost_usd=self._registry.cost_usd(model_id, tokens))

    def count(self, entry: UsageEntry) -> None:
        """Prometheus counters (synchronous: never skipped by a failing store)."""
        m = self._metrics
        m.replies.labels(finish_reason=entry.finish_reason, path=entry.path).inc()
        if entry.room_id is not None:
            m.messages.labels(role="assistant").inc()
        m.tokens.labels(kind="input").inc(entry.usage.input_tokens)
        m.tokens.labels(kind="output").inc(entry.usage.output_tokens)
        m.cost.inc(entry.usage.cost_usd)
        if entry.ttft_ms is not None:
            m.ttft.observe(entry.ttft_ms / 1000)

    async def charge(self, entry: UsageEntry) -> None:
        """Add the tokens to the user's daily budget."""
        spent = entry.usage.input_tokens + entry.usage.output_tokens
        if spent:
            await self._limiter.add(tokens_key(entry.user_id), spent, DAY)

    async def log(self, entry: UsageEntry) -> None:
        """Write the ledger record of a call that has no message to carry its usage."""
        await self._ledger.insert({
            "_id": new_id(), "user_id": entry.user_id, "path": entry.path,
            "model": entry.model, "usage": entry.usage.model_dump(),
            "metrics": {"latency_ms": entry.latency_ms, "ttft_ms": entry.ttft_ms},
            "status": entry.status, "finish_reason": entry.finish_reason,
            "created_at": utcnow(),
        })
