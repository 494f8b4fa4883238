"""`search_documents` through a running server's tool registry: retrieval's isolation rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.llm.base import ToolCall
from app.tools.base import ToolContext
from tests.client import Parlour, start_parlour
from tests.test_files import upload, wait_file_ready
from tests.test_retrieval import FACT, FILLERS, add_documents


@pytest.fixture
async def server(make_settings: Any) -> AsyncIterator[Parlour]:
    server = await start_parlour(make_settings())
    yield server
    await server.close()


async def search(server: Parlour, room_id: str, asker: str, query: str) -> dict[str, Any]:
    room = await server.services.rooms._rooms.get(room_id)
    assert room is not None and server.services.tools is not None
    tools = server.services.tools.for_room(["search_documents"], ToolContext(room, asker))
    result = await tools.call(ToolCall("c1", "search_documents",
                                       json.dumps({"query": query, "top_k": 2})))
    assert result.status == "done", result
    found: dict[str, Any] = json.loads(result.content)
    return found


async def test_search_documents_follows_retrievals_isolation(server: Parlour) -> None:
    alice, bob = await server.signup("Alice"), await server.signup("Bob")
    fact_id, *_ = await add_documents(server, alice, ("memo.txt", FACT), *FILLERS)
    s = await server.socket(alice)
    private = (await s.ok("create_room", {"title": "mine"}))["room"]["room_id"]
    shared = (await s.ok("create_room", {"title": "team"}))["room"]["room_id"]
    await s.ok("invite", {"room_id": shared, "email": bob.email})
    note = "Team note: the Brassfinch observatory's spare lens cap is in drawer 12."
    status, data = await upload(server, alice, shared, ("team.md", note.encode(), None))
    assert status == 201, data
    file_id = data["files"][0]["file_id"]
    await wait_file_ready(server, alice, shared, file_id)
    query = "Where is the Brassfinch observatory lens cap?"

    # Her private chat: her own documents.
    found = await search(server, private, alice.user_id, query)
    assert found["results"][0]["document_id"] == fact_id
    assert found["results"][0]["filename"] == "memo.txt" and FACT in found["results"][0]["text"]
    # The shared room: its file only, never a member's documents, whoever asks.
    for asker in (alice, bob):
        found = await search(server, shared, asker.user_id, query)
        assert [r["document_id"] for r in found["results"]] == [file_id]
    # Bob's own chat: nothing of Alice's.
    b = await server.socket(bob)
    bobs = (await b.ok("create_room", {"title": "bob"}))["room"]["room_id"]
    assert (await search(server, bobs, bob.user_id, query))["results"] == []
