"""The model catalog: context windows and prices, read once from app/data/pricing.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.llm.base import TokenUsage, split_model_id

DEFAULT_PRICING_PATH = Path(__file__).resolve().parent.parent / "data" / "pricing.toml"
_PER_MTOK = 1_000_000
# What a client shows beside replies of a model marked `demo = true` (and the server logs
# at startup when such a model is the default): what it is, and the one line to change it.
DEMO_NOTICE = (
    "This is a 135M-parameter demo model running on this machine: its answers are often "
    "wrong. For real answers restart with a provider key, e.g. `OPENAI_API_KEY=sk-... make "
    "run` (or choose the model with PARLOUR_LLM__DEFAULT_MODEL=provider:model)."
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One catalog entry; prices are USD per million tokens."""

    id: str
    provider: str
    name: str
    context_window: int
    input_per_mtok: float
    output_per_mtok: float
    cached_per_mtok: float
    # A small model for trying Parlour out, not for answers (the embedded SmolLM2).
    demo: bool = False
    # Audio tokens (Realtime models); None: billed like text.
    audio_input_per_mtok: float | None = None
    audio_output_per_mtok: float | None = None
    # Reads images (attachments go as image parts) / audio natively.
    vision: bool = False
    audio: bool = False

    @property
    def notice(self) -> str | None:
        """The sentence a client shows beside this model's replies, if any."""
        return DEMO_NOTICE if self.demo else None

    def as_dict(self, *, available: bool) -> dict[str, Any]:
        """The REST/Socket.IO model shape."""
        return {
            "id": self.id,
            "provider": self.provider,
            "name": self.name,
            "context_window": self.context_window,
            "input_per_mtok": self.input_per_mtok,
            "output_per_mtok": self.output_per_mtok,
            "cached_per_mtok": self.cached_per_mtok,
            "available": available,
            "demo": self.demo,
            "vision": self.vision,
            "audio": self.audio,
            "notice": self.notice,
        }


def _number(entry: dict[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: {key} must be a non-negative number")
    return float(value)


def _parse_entry(entry: dict[str, Any], where: str) -> ModelInfo:
    model_id = entry.get("id")
    if not isinstance(model_id, str):
        raise ValueError(f"{where}: id must be a string 'provider:model'")
    provider, _ = split_model_id(model_id)
    context = entry.get("context_window")
    if not isinstance(context, int) or isinstance(context, bool) or context <= 0:
        raise ValueError(f"{where} ({model_id}): context_window must be a positive integer")
    return ModelInfo(
        id=model_id,
        provider=provider,
        name=str(entry.get("name", model_id)),
        context_window=context,
        input_per_mtok=_number(entry, "input_per_mtok", model_id),
        output_per_mtok=_number(entry, "output_per_mtok", model_id),
        cached_per_mtok=_number(entry, "cached_per_mtok", model_id),
        demo=_flag(entry, "demo", model_id),
        audio_input_per_mtok=_optional(entry, "audio_input_per_mtok", model_id),
        audio_output_per_mtok=_optional(entry, "audio_output_per_mtok", model_id),
        vision=_flag(entry, "vision", model_id),
        audio=_flag(entry, "audio", model_id),
    )


def _optional(entry: dict[str, Any], key: str, where: str) -> float | None:
    return _number(entry, key, where) if key in entry else None


def _flag(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key} must be true or false")
    return value


class ModelCatalog:
    """Known models in file order, looked up by "provider:model" id."""

    def __init__(self, path: Path = DEFAULT_PRICING_PATH) -> None:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        entries = data.get("models")
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected [[models]] tables")
        self._models: dict[str, ModelInfo] = {}
        for index, entry in enumerate(entries):
            info = _parse_entry(entry, f"{path.name} models[{index}]")
            if info.id in self._models:
                raise ValueError(f"{path.name}: duplicate model id {info.id!r}")
            self._models[info.id] = info

    def models(self) -> list[ModelInfo]:
        """Every model, in file order."""
        return list(self._models.values())

    def get(self, model_id: str) -> ModelInfo | None:
        """The entry for `model_id`, or None when the catalog does not list it."""
        return self._models.get(model_id)

    def cost_usd(self, model_id: str, usage: TokenUsage) -> float:
        """Price of one reply in USD; 0.0 for a model the catalog does not list.

        `usage.input_tokens` includes the cached tokens: those are billed once at the
        cached price and the rest of the input at the input price. Audio tokens (part of
        input and output) are billed at the audio prices when the model lists them.
        """
        info = self._models.get(model_id)
        if info is None:
            return 0.0
        cached = min(max(usage.cached_tokens, 0), usage.input_tokens)
        uncached = usage.input_tokens - cached
        total = (
            uncached * info.input_per_mtok
            + cached * info.cached_per_mtok
            + usage.output_tokens * info.output_per_mtok
        )
        audio_in = min(max(usage.audio_input_tokens, 0), uncached)
        audio_out = min(max(usage.audio_output_tokens, 0), usage.output_tokens)
        if info.audio_input_per_mtok is not None:
            total += audio_in * (info.audio_input_per_mtok - info.input_per_mtok)
        if info.audio_output_per_mtok is not None:
            total += audio_out * (info.audio_output_per_mtok - info.output_per_mtok)
        return total / _PER_MTOK
