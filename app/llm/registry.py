"""Which providers this process can use, built once from settings and the environment."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from app.config import LLMSettings
from app.errors import INVALID_PAYLOAD, UNAVAILABLE, AppError
from app.llm.aisuite_provider import KEY_ENV, AisuiteProvider
from app.llm.base import Provider, TokenUsage, split_model_id
from app.llm.catalog import ModelCatalog, ModelInfo
from app.llm.openai_compat import OpenAICompatProvider

log = logging.getLogger(__name__)

LOCAL_MODEL = "local:smollm2"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "not-needed"  # OpenAI-compatible servers without auth still need a non-empty key


def _env_key_for(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_API_KEY"


class ProviderRegistry:
    """Providers by name, the reasons the others are unavailable, and the model catalog."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        unavailable: Mapping[str, str],
        catalog: ModelCatalog,
        *,
        default_model: str | None = None,
        local_embedded: bool = False,
        borrowed: frozenset[str] = frozenset(),
    ) -> None:
        self._providers = dict(providers)
        self._unavailable = {k: v for k, v in unavailable.items() if k not in self._providers}
        self.models = catalog
        self._default_model = default_model
        self._local_embedded = local_embedded
        self._borrowed = borrowed  # injected by the caller, who closes them

    def available_providers(self) -> list[str]:
        """Names of the providers that can be called."""
        return [name for name, provider in self._providers.items() if provider.available]

    def is_available(self, provider_name: str) -> bool:
        """True when `provider_name` is configured here."""
        provider = self._providers.get(provider_name)
        return provider is not None and provider.available

    def resolve(self, model_id: str) -> tuple[Provider, str]:
        """The provider for "provider:model" and the model name to send it."""
        try:
            provider_name, model = split_model_id(model_id)
        except ValueError as exc:
            raise AppError(INVALID_PAYLOAD, str(exc)) from exc
        provider = self._providers.get(provider_name)
        if provider is not None:
            if not provider.available:
                raise AppError(UNAVAILABLE, f"{provider_name} is not available")
            return provider, model
        if provider_name in self._unavailable:
            raise AppError(UNAVAILABLE, self._unavailable[provider_name])
        raise AppError(
            INVALID_PAYLOAD, f"unknown model {model_id!r}: no provider {provider_name!r}"
        )

    def default_model(self) -> str | None:
        """The configured default, else the first usable real model, else the demo one.

        A provider key in the environment is enough to leave the embedded demo model
        (`OPENAI_API_KEY=... make run` answers with OpenAI).
        """
        if self._default_model:
            return self._default_model
        usable = [m for m in self.models.models() if self.is_available(m.provider)]
        real = next((m.id for m in usable if not m.demo), None)
        if real is not None:
            return real
        if self._local_embedded and self.is_available("local"):
            return LOCAL_MODEL
        return usable[0].id if usable else None

    def demo_notice(self) -> str | None:
        """A warning when the default model is a demo model (logged at startup)."""
        model = self.default_model()
        info = self.models.get(model) if model else None
        if info is None or info.notice is None:
            return None
        return f"the assistant answers with {model}. {info.notice}"

    def model_info(self, model_id: str) -> ModelInfo | None:
        """The catalog entry of `model_id`, if listed."""
        return self.models.get(model_id)

    def cost_usd(self, model_id: str, usage: TokenUsage) -> float:
        """Price of `usage` on `model_id` (0.0 for models without a listed price)."""
        return self.models.cost_usd(model_id, usage)

    def catalog(self, page: int = 1, page_size: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page (1-based) of catalog models with their `available` flag, and the total."""
        if page < 1 or page_size < 1:
            raise AppError(INVALID_PAYLOAD, "page and page_size must be at least 1")
        # Models that can answer here come first (the sort keeps file order otherwise).
        models = sorted(self.models.models(), key=lambda m: not self.is_available(m.provider))
        start = (page - 1) * page_size
        chosen = models[start : start + page_size]
        return [m.as_dict(available=self.is_available(m.provider)) for m in chosen], len(models)

    async def close(self) -> None:
        """Close every provider; a failure to close one is logged, not raised."""
        for name, provider in self._providers.items():
            if name in self._borrowed:
                continue
            try:
                await provider.close()
            except Exception:
                log.exception("closing provider %s failed", name)


def build_registry(
    settings: LLMSettings,
    local_base_url: str | None,
    extra: Mapping[str, Provider] | None = None,
    *,
    local_api_key: str | None = None,
    catalog: ModelCatalog | None = None,
) -> ProviderRegistry:
    """Providers from settings and the environment; `extra` ones are added as given.

    `local_base_url`/`local_api_key` come from a running LocalLlamaServer, if any.
    """
    providers: dict[str, Provider] = {}
    unavailable: dict[str, str] = {}
    timeout = settings.request_timeout_seconds

    openai_key = os.environ.get(OPENAI_KEY_ENV)
    if openai_key:
        providers["openai"] = OpenAICompatProvider(
            "openai",
            settings.openai_base_url,
            openai_key,
            timeout_seconds=timeout,
            max_tokens_field="max_completion_tokens",
        )
    else:
        unavailable["openai"] = f"openai is not configured: set {OPENAI_KEY_ENV}"

    compatible = dict(settings.extra_openai_compatible)
    configured_local = compatible.pop("local", None)
    local_url = configured_local or local_base_url
    if local_url:
        embedded_key = None if configured_local else local_api_key
        key = embedded_key or os.environ.get(_env_key_for("local")) or NO_KEY
        providers["local"] = OpenAICompatProvider(
            "local", local_url, key, timeout_seconds=timeout,
            context_setting=None if configured_local else "llm.local_context_window",
        )
    else:
        unavailable["local"] = (
            "local is not configured: the embedded llama.cpp server is not running "
            "(set llm.local_enabled, or llm.extra_openai_compatible.local to a base URL)"
        )

    for name, url in compatible.items():
        if name in KEY_ENV or name == "openai":
            raise ValueError(f"llm.extra_openai_compatible: {name!r} is a built-in provider")
        key = os.environ.get(_env_key_for(name)) or NO_KEY
        providers[name] = OpenAICompatProvider(name, url, key, timeout_seconds=timeout)

    for name in KEY_ENV:
        aisuite_provider = AisuiteProvider(name, timeout_seconds=timeout)
        reason = aisuite_provider.unavailable_reason
        if reason is None:
            providers[name] = aisuite_provider
        else:
            unavailable[name] = reason

    providers.update(extra or {})
    log.info("LLM providers available: %s", ", ".join(sorted(providers)) or "none")
    embedded = local_base_url is not None and configured_local is None
    return ProviderRegistry(
        providers,
        unavailable,
        catalog or ModelCatalog(),
        default_model=settings.default_model,
        local_embedded=embedded,
        borrowed=frozenset(extra or {}),
    )
