"""Retrieval in replies, with the scripted provider recording what the model was given."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from app.rag.embeddings import Embedder
from app.rag.retrieval import RagRetriever
from tests.client import Parlour, SocketClient, User, start_parlour
from tests.rag_fixtures import pinecone_index
from tests.scripted_provider import ScriptedProvider
from tests.test_documents import upload_documents
from tests.test_files import upload, wait_file_ready, wait_status

FACT = ("Quarterly memo: the Brassfinch observatory keeps its telescope lens cap in "
        "locker 7731, behind the copper samovar.")
QUESTION = "In which locker does the Brassfinch observatory keep its telescope lens cap?"
FILLERS = [
    ("garden.txt", "The community garden grows tomatoes, basil and three kinds of squash."),
    ("bus.txt", "Route 12 buses leave the depot every twenty minutes on weekdays."),
]


class CountingEmbedder:
    """The real embedder, counting calls (to see that retrieval skipped embedding)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dimensions = inner.dimensions
        self.calls = 0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return await self.inner.embed(texts)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture(params=["sqlite", "pinecone"])
async def server(
    request: pytest.FixtureRequest, make_settings: Any, scripted: ScriptedProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Parlour]:
    overrides: dict[str, Any] = {"assistant__delta_interval_ms": 0,
                                 "vectors__recall_skip_recent": 2}
    async with AsyncExitStack() as stack:
        if request.param == "pinecone":
            monkeypatch.setenv("PINECONE_API_KEY", "stub-key")
            host = await stack.enter_async_context(pinecone_index())
            overrides |= {"vectors__backend": "pinecone", "vectors__pinecone_host": host}
        parlour = await start_parlour(make_settings(**overrides), providers={"scripted": scripted})
        yield parlour
        await parlour.close()


async def ask(s: SocketClient, room_id: str, content: str) -> dict[str, Any]:
    """Send a message and return the assistant's final message that answers it."""
    sent = (await s.ok("send_message", {"room_id": room_id, "content": content}))["message"]
    done = await s.wait("assistant_done", timeout=30, where=lambda d: (
        d["message"]["reply_to"] == sent["message_id"]))
    message: dict[str, Any] = done[0]["message"]
    return message


def system_of(scripted: ScriptedProvider) -> str:
    """The system prompt of the provider's last call."""
    return scripted.prompts[-1][0].content


async def private_chat(server: Parlour, user: User) -> tuple[SocketClient, str]:
    s = await server.socket(user)
    room = (await s.ok("create_room", {"model": "scripted:fixed"}))["room"]
    return s, room["room_id"]


async def add_documents(server: Parlour, user: User, *texts: tuple[str, str]) -> list[str]:
    status, data = await upload_documents(
        server, user, *[(name, text.encode(), None) for name, text in texts]
    )
    assert status == 202, data
    ids = [d["document_id"] for d in data["documents"]]
    for doc_id in ids:
        await wait_status(server, user, f"/api/v1/documents/{doc_id}")
    return ids


async def test_a_documented_fact_reaches_the_prompt_and_the_sources(
    server: Parlour, scripted: ScriptedProvider
) -> None:
    user = await server.signup()
    fact_id, *_ = await add_documents(server, user, ("memo.txt", FACT), *FILLERS)
    s, room_id = await private_chat(server, user)
    reply = await ask(s, room_id, QUESTION)
    assert FACT in system_of(scripted)
    assert "memo.txt" in system_of(scripted) and fact_id in system_of(scripted)
    sources = reply["sources"]
    assert sources[0]["document_id"] == fact_id
    assert sources[0]["filename"] == "memo.txt" and sources[0]["chunk_index"] == 0
    assert FACT in sources[0]["snippet"] and 0 < sources[0]["score"] <= 1
    status, history = await server.request("GET", f"/api/v1/chat/{room_id}/messages", user)
    assert history["messages"][-1]["sources"] == sources


async def test_shared_rooms_use_room_files_never_private_documents(
    server: Parlour, scripted: ScriptedProvider
) -> None:
    alice, bob = await server.signup("Alice"), await server.signup("Bob")
    await add_documents(server, alice, ("memo.txt", FACT))
    s = await server.socket(alice)
    room_id = (await s.ok("create_room", {"model": "scripted:fixed"}))["room"]["room_id"]
    await s.ok("invite", {"room_id": room_id, "email": bob.email})
    room_fact = "Team note: the Brassfinch observatory's spare lens cap is in drawer 12."
    status, data = await upload(server, alice, room_id, ("team.md", room_fact.encode(), None))
    assert status == 201, data
    file_id = data["files"][0]["file_id"]
    await wait_file_ready(server, alice, room_id, file_id)

    reply = await ask(s, room_id, "@assistant " + QUESTION)
    system = system_of(scripted)
    assert room_fact in system and FACT not in system
    assert [src["document_id"] for src in reply["sources"]] == [file_id]


async def test_one_users_documents_never_answer_another(
    server: Parlour, scripted: ScriptedProvider
) -> None:
    alice, bob = await server.signup(), await server.signup()
    await add_documents(server, alice, ("memo.txt", FACT))
    s, room_id = await private_chat(server, bob)
    reply = await ask(s, room_id, QUESTION)
    assert "7731" not in system_of(scripted)
    assert reply["sources"] == []


async def test_no_embedding_when_there_is_nothing_to_search(
    server: Parlour, scripted: ScriptedProvider
) -> None:
    retriever = server.services.engine.retriever
    assert isinstance(retriever, RagRetriever)
    counting = CountingEmbedder(retriever.embedder)
    retriever.embedder = counting
    user = await server.signup()
    s, room_id = await private_chat(server, user)
    await ask(s, room_id, "hello there")
    assert counting.calls == 0
    _, data = await upload(server, user, room_id, ("facts.txt", FACT.encode(), None))
    await wait_file_ready(server, user, room_id, data["files"][0]["file_id"])
    reply = await ask(s, room_id, QUESTION)
    assert counting.calls == 1
    assert reply["sources"][0]["document_id"] == data["files"][0]["file_id"]


async def test_earlier_turns_are_recalled_but_are_not_sources(
    make_settings: Any, scripted: ScriptedProvider
) -> None:
    # A small window, so the early turns fall out of the context and need recalling.
    server = await start_parlour(make_settings(
        assistant__delta_interval_ms=0, vectors__recall_skip_recent=2,
        llm__local_context_window=512, assistant__max_output_tokens=200,
    ), providers={"scripted": scripted})
    try:
        await _recall_flow(server, scripted)
    finally:
        await server.close()


async def test_history_that_fits_is_not_searched(
    server: Parlour, scripted: ScriptedProvider
) -> None:
    user = await server.signup()
    s, room_id = await private_chat(server, user)
    for text in ("my lock code is 5-8-2-9", "sunny today", "what is my lock code?"):
        await ask(s, room_id, text)
    assert "Earlier in this chat (recalled):" not in system_of(scripted)
    prompt = "\n".join(m.content for m in scripted.prompts[-1])
    assert "my lock code is 5-8-2-9" in prompt  # it is simply in the context


async def _recall_flow(server: Parlour, scripted: ScriptedProvider) -> None:
    user = await server.signup()
    s, room_id = await private_chat(server, user)
    await ask(s, room_id, "Please remember that my bicycle lock combination is 5-8-2-9.")
    await ask(s, room_id, "What a sunny afternoon for a walk in the park.")
    await ask(s, room_id, "Some long notes: " + "the river bends past the old mill. " * 40)
    marks = server.services.mongo.collection("recall_marks")
    deadline = time.monotonic() + 30
    while ((await marks.find_one({"_id": room_id})) or {}).get("seq", 0) < 5:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    reply = await ask(s, room_id, "What is the combination of my bicycle lock?")
    system = system_of(scripted)
    assert "Earlier in this chat (recalled):" in system
    recalled = system.split("Earlier in this chat (recalled):", 1)[1]
    assert "- user (message 1): Please remember that my bicycle lock combination is 5-8-2-9." in (
        recalled)
    assert reply["sources"] == []
