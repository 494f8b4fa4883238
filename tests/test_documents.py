"""The knowledge base: uploads, ingestion progress events, failures, ownership, restarts."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import docx
import pytest

from app.ids import new_id
from app.keys import BLOBS
from app.models import utcnow
from storage.files import FileRecord
from tests.client import Parlour, User, start_parlour
from tests.rag_fixtures import pinecone_index
from tests.test_files import blob_key, form, vectors_of, wait_status

FACT = "The Velvet Orchid lounge on Pier 9 serves its tea with exactly eleven cardamom pods."


def docx_bytes(*paragraphs: str) -> bytes:
    """A real .docx made with python-docx."""
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def upload_documents(parlour: Parlour, user: User, *files: Any) -> tuple[int, Any]:
    """POST files to the knowledge base."""
    return await parlour.request("POST", "/api/v1/documents", user, data=form(*files))


@pytest.fixture(params=["sqlite", "pinecone"])
async def server(
    request: pytest.FixtureRequest, make_settings: Any, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Parlour]:
    """A Parlour with vectors in sqlite-vec or in Pinecone (the stub)."""
    overrides: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        if request.param == "pinecone":
            monkeypatch.setenv("PINECONE_API_KEY", "stub-key")
            host = await stack.enter_async_context(pinecone_index())
            overrides = {"vectors__backend": "pinecone", "vectors__pinecone_host": host}
        parlour = await start_parlour(make_settings(**overrides))
        yield parlour
        await parlour.close()


async def test_document_ingests_with_progress_events_then_deletes(server: Parlour) -> None:
    user = await server.signup()
    s = await server.socket(user)
    body = "\n\n".join(f"Paragraph {i}: " + "filler words about harbours " * 30
                       for i in range(12)) + "\n\n" + FACT
    status, data = await upload_documents(
        server, user, ("harbour.md", body.encode(), "text/markdown"),
        ("menu.docx", docx_bytes("Menu of the day", FACT), None),
    )
    assert status == 202, data
    docs = data["documents"]
    assert [d["status"] for d in docs] == ["processing", "processing"]
    assert docs[1]["content_type"].endswith("wordprocessingml.document")
    for doc in docs:
        events = await s.wait("document_status", timeout=60, where=lambda e, d=doc: (
            e["document_id"] == d["document_id"] and e["status"] != "processing"))
        assert events[-1]["status"] == "ready"
        mine = [e for e in s.named("document_status") if e["document_id"] == doc["document_id"]]
        progress = [e["progress"] for e in mine]
        assert progress == sorted(progress) and progress[-1] == 1.0
        assert all(e["status"] == "processing" for e in mine[:-1])
        record = await wait_status(server, user, f"/api/v1/documents/{doc['document_id']}")
        assert record["chunks"] >= 1 and "error" not in record
    md_chunks = (await wait_status(server, user, f"/api/v1/documents/{docs[0]['document_id']}"))[
        "chunks"]
    assert md_chunks > 3  # long enough to be split, with progress steps

    status, listed = await server.request("GET", "/api/v1/documents", user)
    assert status == 200 and {d["document_id"] for d in listed["documents"]} == {
        d["document_id"] for d in docs}
    stored = await vectors_of(server, f"user:{user.user_id}")
    assert {v.metadata["document_id"] for v in stored} == {d["document_id"] for d in docs}
    assert any(FACT in str(v.metadata["text"]) for v in stored)

    gone = docs[0]["document_id"]
    key = await blob_key(server, gone)
    assert (await server.request("DELETE", f"/api/v1/documents/{gone}", user))[0] == 204
    assert (await server.request("GET", f"/api/v1/documents/{gone}", user))[0] == 404
    # Idempotent, like chat files: deleting it again is 204 too.
    assert (await server.request("DELETE", f"/api/v1/documents/{gone}", user))[0] == 204
    assert not await server.runner.app[BLOBS].exists(key)
    left = await vectors_of(server, f"user:{user.user_id}")
    assert {v.metadata["document_id"] for v in left} == {docs[1]["document_id"]}


async def test_corrupt_pdf_fails_with_a_reason_and_the_next_document_ingests(
    parlour: Parlour,
) -> None:
    user = await parlour.signup()
    status, data = await upload_documents(
        parlour, user, ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", None),
    )
    assert status == 202, data
    broken = data["documents"][0]["document_id"]
    _, data = await upload_documents(parlour, user, ("after.txt", FACT.encode(), None))
    after = data["documents"][0]["document_id"]
    failed = await wait_status(parlour, user, f"/api/v1/documents/{broken}", want="failed")
    assert "pdf" in failed["error"]
    await wait_status(parlour, user, f"/api/v1/documents/{after}")
    _, data = await upload_documents(parlour, user, ("empty.txt", b"   \n", None))
    empty = await wait_status(parlour, user, f"/api/v1/documents/{data['documents'][0]['document_id']}",
                              want="failed")
    assert "no text" in empty["error"]
    metrics = await (await parlour.http.get(f"{parlour.url}/internal/metrics")).text()
    assert 'parlour_ingestion_total{outcome="failed"} 2.0' in metrics
    assert 'parlour_ingestion_total{outcome="ready"} 1.0' in metrics


async def test_index_limits_fail_documents_with_a_reason(make_settings: Any) -> None:
    server = await start_parlour(make_settings(
        limits__max_index_mb=0.002, limits__max_chunks_per_document=2))
    try:
        user = await server.signup()
        long_text = " ".join(f"Sentence number {i} is here." for i in range(300))[:2000]
        _, data = await upload_documents(server, user, ("big.txt", b"word " * 1000, None),
                                         ("long.txt", long_text.encode(), None))
        big, long = (d["document_id"] for d in data["documents"])
        failed = await wait_status(server, user, f"/api/v1/documents/{big}", want="failed")
        assert "too large to index" in failed["error"]
        failed = await wait_status(server, user, f"/api/v1/documents/{long}", want="failed")
        assert "too much text" in failed["error"]
    finally:
        await server.close()


async def test_other_users_documents_are_not_found(parlour: Parlour) -> None:
    alice, bob = await parlour.signup(), await parlour.signup()
    _, data = await upload_documents(parlour, alice, ("a.txt", b"alice's notes", None))
    doc_id = data["documents"][0]["document_id"]
    for path in ("", "/content"):
        status, body = await parlour.request("GET", f"/api/v1/documents/{doc_id}{path}", bob)
        assert status == 404 and body["error"]["code"] == "not_found"
    # A delete is idempotent: 204 whether the id is gone or never was Bob's (the same
    # answer reveals nothing), and Alice's document stays.
    assert (await parlour.request("DELETE", f"/api/v1/documents/{doc_id}", bob))[0] == 204
    assert (await parlour.request("GET", f"/api/v1/documents/{doc_id}", alice))[0] == 200
    # The owner downloads the bytes back, as an attachment with its type.
    async with parlour.http.get(
        f"{parlour.url}/api/v1/documents/{doc_id}/content",
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as resp:
        assert resp.status == 200 and await resp.read() == b"alice's notes"
        assert resp.content_type == "text/plain"
        assert resp.headers["Content-Disposition"] == "attachment; filename*=UTF-8''a.txt"
    _, listed = await parlour.request("GET", "/api/v1/documents", bob)
    assert listed == {"documents": []}
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await parlour.request("GET", "/api/v1/documents", headers=bad))[0] == 401
    await wait_status(parlour, alice, f"/api/v1/documents/{doc_id}")


async def test_documents_left_processing_by_a_crash_are_ingested_at_startup(
    make_settings: Any,
) -> None:
    settings = make_settings()
    first = await start_parlour(settings)
    user = await first.signup()
    # What a crash mid-ingestion leaves: a stored blob and a claimed `processing` record.
    file_id = new_id()
    key = f"users/{user.user_id}/{file_id}"

    async def body() -> AsyncIterator[bytes]:
        yield FACT.encode()

    await first.runner.app[BLOBS].put(key, body(), "text/plain")
    record = FileRecord(
        file_id=file_id, scope="user", owner_id=user.user_id, filename="left.txt",
        content_type="text/plain", size=len(FACT), sha256="0" * 64, key=key,
        created_at=utcnow(), attempts=1,
    )
    await first.services.mongo.collection("files").insert_one({
        **record.model_dump(exclude={"file_id"}), "_id": file_id, "node": "dead-node",
        "lease_until": utcnow() + timedelta(hours=1),
    })
    await first.close()

    second = await start_parlour(settings)
    try:
        done = await wait_status(second, user, f"/api/v1/documents/{file_id}")
        assert done["chunks"] == 1
    finally:
        await second.close()
