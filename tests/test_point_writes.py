"""Writes to one document go by its `_id`, never through findAndModify.

SecantusDB, the embedded default, finds a findAndModify's document through the index but
rewrites it under a filter no index serves, so each one scans the whole collection: 339 ms
with 30,000 messages stored on disk (`python -m bench.db_scaling`), and every reply
writes its message at least twice. Parlour updates with `update_one` and reads the result
back (storage/mongo.update_and_read). These tests run what users do that changes one
document (a reply, a room renamed, a member added, re-roled and removed, a session
refreshed, a file ingested and deleted) and check that no findAndModify reaches the
database; and that the pairs keep what findAndModify guaranteed: of several callers
racing for one document (a refresh token, a one-time login token, an upload to ingest),
exactly one wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from app.ids import new_id
from app.models import utcnow
from storage.files import FileRecord, FileStore
from storage.mongo import Mongo, delete_and_read, update_and_read
from tests.client import start_parlour
from tests.mongo_commands import Commands, listening
from tests.scripted_provider import ScriptedProvider


@pytest.fixture
def commands() -> Iterator[Commands]:
    with listening(Commands()) as listener:
        yield listener


async def test_what_users_do_to_one_document_sends_no_find_and_modify(
    make_settings: Any, commands: Commands,
) -> None:
    provider = ScriptedProvider(deltas=["an ", "answer"])
    server = await start_parlour(make_settings(), providers={"scripted": provider})
    try:
        owner, guest = await server.signup(), await server.signup()
        s = await server.socket(owner)
        room = (await s.ok("create_room", {"model": "scripted:fixed",
                                           "assistant_mode": "always"}))["room"]
        room_id = room["room_id"]
        await s.ok("send_message", {"room_id": room_id, "content": "a question"})
        done = (await s.wait("assistant_done", timeout=10))[0]
        await s.ok("update_room", {"room_id": room_id, "title": "renamed"})
        await s.ok("invite", {"room_id": room_id, "email": guest.email})
        await s.ok("update_member", {"room_id": room_id, "user_id": guest.user_id,
                                     "role": "viewer"})
        await s.ok("remove_member", {"room_id": room_id, "user_id": guest.user_id})
        status, _ = await server.request("POST", "/api/v1/auth/refresh",
                                         json={"refresh_token": owner.refresh_token})
        assert status == 200
        form = aiohttp.FormData()
        form.add_field("files", b"some notes", filename="notes.txt", content_type="text/plain")
        status, files = await server.request("POST", f"/api/v1/chat/{room_id}/upload",
                                             owner, data=form)
        assert status in (200, 201), files
        file_id = files["files"][0]["file_id"]
        status, _ = await server.request("DELETE", f"/api/v1/chat/{room_id}/files/{file_id}",
                                         owner)
        assert status == 204

        # What the user sees is what was written: the reply, the room, its members.
        status, page = await server.request("GET", f"/api/v1/chat/{room_id}/messages", owner)
        reply = next(m for m in page["messages"] if m["message_id"] == done["message_id"])
        assert (reply["content"], reply["status"]) == ("an answer", "complete")
        status, chat = await server.request("GET", f"/api/v1/chat/{room_id}", owner)
        assert chat["title"] == "renamed"
        assert [m["user_id"] for m in chat["members"]] == [owner.user_id]
    finally:
        await server.close()
    assert commands.seen[("update", "messages")] >= 1, commands.seen  # the reply's writes
    assert commands.seen[("update", "rooms")] >= 4, commands.seen
    modifies = {k: n for k, n in commands.seen.items() if k[0] == "findAndModify"}
    assert modifies == {}


async def _collection(mongo_uri: str) -> tuple[AsyncMongoClient[dict[str, Any]], Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    return client, client[f"point_writes_{new_id()[:8]}"]["docs"]


async def test_of_callers_racing_to_spend_one_document_exactly_one_gets_it(
    mongo_uri: str,
) -> None:
    client, docs = await _collection(mongo_uri)
    try:
        await docs.insert_one({"_id": "token", "used_at": None})
        spent = await asyncio.gather(*(
            update_and_read(docs, {"_id": "token", "used_at": None},
                            {"$set": {"used_at": utcnow(), "by": i}})
            for i in range(12)))
        winners = [doc for doc in spent if doc is not None]
        assert len(winners) == 1
        stored = await docs.find_one({"_id": "token"})
        assert stored is not None and stored["by"] == winners[0]["by"]
        # A query that no longer matches leaves the document as it is.
        assert await update_and_read(docs, {"_id": "token", "used_at": None},
                                     {"$set": {"by": -1}}) is None
        assert (await docs.find_one({"_id": "token"}) or {})["by"] == winners[0]["by"]

        await docs.insert_one({"_id": "once", "user_id": "u1"})
        taken = await asyncio.gather(*(delete_and_read(docs, {"_id": "once"})
                                       for _ in range(12)))
        assert [doc for doc in taken if doc is not None] == [{"_id": "once", "user_id": "u1"}]
        assert await docs.count_documents({"_id": "once"}) == 0
    finally:
        await client.drop_database(docs.database.name)
        await client.close()


async def test_nodes_claiming_uploads_at_once_each_take_a_different_one(
    mongo_uri: str,
) -> None:
    mongo = Mongo(mongo_uri, f"point_writes_{new_id()[:8]}")
    try:
        files = FileStore(mongo)
        now = utcnow()
        ids = [new_id() for _ in range(3)]
        for i, file_id in enumerate(ids):
            await files.insert(FileRecord(
                file_id=file_id, scope="user", owner_id="u1", filename=f"{i}.txt",
                content_type="text/plain", size=1, sha256="0" * 64, key=file_id,
                created_at=now + timedelta(seconds=i)))
        claims = await asyncio.gather(*(files.claim(f"node{i}", 60) for i in range(8)))
        taken = [c.file_id for c in claims if c is not None]
        assert sorted(taken) == sorted(ids)  # every record once, none twice
        assert all(c.attempts == 1 for c in claims if c is not None)
        assert await files.claim("late", 60) is None  # all leased
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()
