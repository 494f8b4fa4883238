"""Catalog, prices, availability flags and token counting (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import LLMSettings
from app.errors import INVALID_PAYLOAD, AppError
from app.llm.base import ChatMessage, TokenUsage
from app.llm.catalog import ModelCatalog
from app.llm.registry import LOCAL_MODEL, build_registry
from app.llm.tokens import count_messages, count_tokens

PRICES = """
[[models]]
id = "acme:big"
name = "Big"
context_window = 1000
input_per_mtok = 2.0
output_per_mtok = 8.0
cached_per_mtok = 0.5
"""


def write_prices(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pricing.toml"
    path.write_text(text)
    return path


def test_cost_bills_cached_tokens_once_at_cached_price(tmp_path: Path) -> None:
    catalog = ModelCatalog(write_prices(tmp_path, PRICES))
    assert catalog.cost_usd("acme:big", TokenUsage(1_000_000, 0)) == pytest.approx(2.0)
    assert catalog.cost_usd("acme:big", TokenUsage(0, 1_000_000)) == pytest.approx(8.0)
    # 600k uncached at 2.0, 400k cached at 0.5, 200k output at 8.0
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=200_000, cached_tokens=400_000)
    assert catalog.cost_usd("acme:big", usage) == pytest.approx(1.2 + 0.2 + 1.6)
    # cached can never exceed the input it is part of
    assert catalog.cost_usd("acme:big", TokenUsage(100, 0, 500)) == pytest.approx(100 * 0.5 / 1e6)
    assert catalog.cost_usd("acme:unknown", usage) == 0.0


def test_shipped_prices_cover_providers_and_drive_cost() -> None:
    catalog = ModelCatalog()
    ids = {m.id for m in catalog.models()}
    for required in (
        "openai:gpt-4o",
        "openai:gpt-4o-mini",
        "openai:gpt-4.1",
        "openai:gpt-4.1-mini",
        "openai:o3-mini",
        "groq:llama-3.3-70b-versatile",
        "groq:llama-3.1-8b-instant",
        "aws:amazon.nova-micro-v1:0",
        LOCAL_MODEL,
    ):
        assert required in ids
    assert {m.provider for m in catalog.models()} == {"openai", "anthropic", "groq", "aws", "local"}
    for model in catalog.models():
        assert model.cached_per_mtok <= model.input_per_mtok, model.id
    gpt = catalog.get("openai:gpt-4o")
    assert gpt is not None
    usage = TokenUsage(input_tokens=3_000, output_tokens=1_000, cached_tokens=1_000)
    expected = (2_000 * gpt.input_per_mtok + 1_000 * gpt.cached_per_mtok) / 1e6
    expected += 1_000 * gpt.output_per_mtok / 1e6
    assert catalog.cost_usd("openai:gpt-4o", usage) == pytest.approx(expected)
    local = catalog.get(LOCAL_MODEL)
    assert local is not None and local.context_window == 8192
    assert catalog.cost_usd(LOCAL_MODEL, TokenUsage(10_000, 10_000)) == 0.0


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ('id = "nocolon"\ncontext_window = 1', "provider:model"),
        ('id = "a:b"\ncontext_window = 0', "context_window"),
        ('id = "a:b"\ncontext_window = 5\ninput_per_mtok = -1', "input_per_mtok"),
    ],
)
def test_bad_price_entries_are_rejected(tmp_path: Path, entry: str, error: str) -> None:
    text = f"[[models]]\n{entry}\noutput_per_mtok = 1\ncached_per_mtok = 1\n"
    with pytest.raises(ValueError, match=error):
        ModelCatalog(write_prices(tmp_path, text))
    with pytest.raises(ValueError, match="duplicate"):
        ModelCatalog(write_prices(tmp_path, PRICES + PRICES))


def test_catalog_pages_cover_every_model_once(llm_env: pytest.MonkeyPatch) -> None:
    registry = build_registry(LLMSettings(), None)
    first, total = registry.catalog(page=1, page_size=7)
    assert len(first) == 7 and total == len(registry.models.models())
    seen: list[str] = []
    page = 1
    while models := registry.catalog(page=page, page_size=7)[0]:
        seen += [m["id"] for m in models]
        page += 1
    assert seen == [m.id for m in registry.models.models()]
    assert registry.catalog(page=page + 3, page_size=7) == ([], total)
    assert set(first[0]) == {
        "id",
        "provider",
        "name",
        "context_window",
        "input_per_mtok",
        "output_per_mtok",
        "cached_per_mtok",
        "available",
        "demo",
        "notice",
        "vision",
        "audio",
    }
    with pytest.raises(AppError) as err:
        registry.catalog(page=0, page_size=7)
    assert err.value.code == INVALID_PAYLOAD


def availability(llm_env: pytest.MonkeyPatch, local_url: str | None = None) -> dict[str, bool]:
    registry = build_registry(LLMSettings(), local_url)
    models, _ = registry.catalog(page=1, page_size=1000)
    flags: dict[str, bool] = {}
    for model in models:
        flags[model["provider"]] = flags.get(model["provider"], True) and model["available"]
    return flags


def test_availability_follows_environment_keys(llm_env: pytest.MonkeyPatch) -> None:
    none = dict.fromkeys(("openai", "anthropic", "groq", "aws", "local"), False)
    assert availability(llm_env) == none
    llm_env.setenv("OPENAI_API_KEY", "sk-test")
    llm_env.setenv("GROQ_API_KEY", "gsk-test")
    assert availability(llm_env) == none | {"openai": True, "groq": True}
    llm_env.setenv("AWS_PROFILE", "somebody")
    llm_env.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    flags = availability(llm_env, local_url="http://127.0.0.1:9/v1")
    assert flags == dict.fromkeys(none, True)


def test_default_model_prefers_setting_then_a_real_provider_then_the_local_demo(
    llm_env: pytest.MonkeyPatch,
) -> None:
    assert build_registry(LLMSettings(), None).default_model() is None
    local_url = "http://127.0.0.1:9/v1"
    assert build_registry(LLMSettings(), local_url).default_model() == LOCAL_MODEL
    llm_env.setenv("GROQ_API_KEY", "gsk-test")
    assert build_registry(LLMSettings(), None).default_model() == "groq:llama-3.3-70b-versatile"
    # A key is enough to leave the demo model, even while the local server runs.
    with_local = build_registry(LLMSettings(), local_url)
    assert with_local.default_model() == "groq:llama-3.3-70b-versatile"
    assert with_local.demo_notice() is None
    chosen = LLMSettings(default_model="groq:llama-3.1-8b-instant")
    assert build_registry(chosen, local_url).default_model() == "groq:llama-3.1-8b-instant"


def test_token_counts() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special tokens count as plain text
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello world")]
    content = count_tokens("Be brief.") + count_tokens("hello world")
    assert count_messages(messages) > content
    assert count_messages(messages[:1]) < count_messages(messages)
