"""Fixtures for the LLM layer (the real llama-server with SmolLM2)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from app.llm.local_server import LocalLlamaServer, LocalServerError, locate
from app.llm.openai_compat import OpenAICompatProvider

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "LOCAL_API_KEY",
)


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No provider key in the environment; set the ones a test needs with the yielded patch."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def llama_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalLlamaServer]:
    """The real llama-server with SmolLM2 on a free loopback port, for the whole session."""
    try:
        locate()
    except LocalServerError as exc:
        pytest.fail(f"the local LLM tests need llama-server and SmolLM2: {exc}", pytrace=False)
    server = LocalLlamaServer(tmp_path_factory.mktemp("llama"), context_window=4096)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def local_provider(llama_server: LocalLlamaServer) -> AsyncIterator[OpenAICompatProvider]:
    """An OpenAICompatProvider talking to the session's llama-server."""
    provider = OpenAICompatProvider("local", llama_server.base_url, llama_server.api_key)
    yield provider
    await provider.close()
