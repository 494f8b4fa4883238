"""Hostile documents: a docx zip bomb, a pathological PDF, deletion and shutdown mid-read."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.client import Parlour, User, start_parlour
from tests.test_documents import docx_bytes, upload_documents
from tests.test_files import rss_mb, wait_status

WORKER = b"app.rag.sandbox_worker"


def zip_bomb_docx(xml_mb: int) -> bytes:
    """A real docx whose document.xml is `xml_mb` MB of paragraphs (compressed ~1000x)."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes("Cover page")))
    out = io.BytesIO()
    paragraph = b"<w:p><w:r><w:t>bomb</w:t></w:r></w:p>"
    block = paragraph * (1024 * 1024 // len(paragraph))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in source.infolist():
            data = source.read(item)
            if item.filename != "word/document.xml":
                bomb.writestr(item, data)
                continue
            head, _, tail = data.partition(b"<w:body>")
            with bomb.open("word/document.xml", "w", force_zip64=True) as xml:
                xml.write(head + b"<w:body>")
                for _ in range(xml_mb):
                    xml.write(block)
                xml.write(tail)
    return out.getvalue()


def pathological_pdf(pages: int = 50, operators: int = 140_000) -> bytes:
    """Pages sharing one content stream of `operators` empty text-show operators (~10 KB)."""
    content = zlib.compress(b"BT /F1 12 Tf " + b"() Tj " * operators + b"ET", 9)
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content
        + b"\nendstream",
    ] + [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    ] * pages
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def worker_pids() -> set[int]:
    """This process's extraction workers (the server runs in the test's process)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and WORKER in cmdline:
            pids.add(int(entry.name))
    return pids


async def extractions_running(server: Parlour) -> float:
    async with server.http.get(f"{server.url}/internal/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("parlour_extractions_running "):
            return float(line.split()[1])
    raise AssertionError("no parlour_extractions_running metric")


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110 (polling the server over HTTP)
            await asyncio.sleep(0.05)


async def health_answers(server: Parlour) -> None:
    async with asyncio.timeout(5):
        async with server.http.get(f"{server.url}/internal/health") as resp:
            assert resp.status == 200


async def upload_one(server: Parlour, user: User, name: str, data: bytes) -> str:
    status, body = await upload_documents(server, user, (name, data, None))
    assert status == 202, body
    document_id: str = body["documents"][0]["document_id"]
    return document_id


async def test_docx_zip_bomb_is_refused_before_it_is_opened(parlour: Parlour) -> None:
    bomb = zip_bomb_docx(200)  # 200 MB of XML in a few hundred KB
    assert len(bomb) < 2 * 1024 * 1024
    user = await parlour.signup()
    before = rss_mb()
    started = time.monotonic()
    document_id = await upload_one(parlour, user, "bomb.docx", bomb)
    failed = await wait_status(parlour, user, f"/api/v1/documents/{document_id}",
                               want="failed", timeout=30)
    assert "ingest.max_zip" in failed["error"], failed
    assert failed["error_code"] == "payload_too_large"
    print(f"zip bomb refused in {time.monotonic() - started:.1f} s, "
          f"server RSS grew {rss_mb() - before:.1f} MB")
    assert rss_mb() - before < 100
    await health_answers(parlour)


async def test_zip_bomb_past_the_checks_hits_the_workers_memory_cap(make_settings: Any) -> None:
    server = await start_parlour(make_settings(
        ingest__max_zip_ratio=1e9, ingest__max_zip_uncompressed_mb=10_000,
        ingest__extract_memory_mb=300,
    ))
    try:
        user = await server.signup()
        before = rss_mb()
        document_id = await upload_one(server, user, "bomb.docx", zip_bomb_docx(200))
        failed = await wait_status(server, user, f"/api/v1/documents/{document_id}",
                                   want="failed", timeout=60)
        assert "ingest.extract_memory_mb" in failed["error"], failed
        assert rss_mb() - before < 100
        # The pool recovers: the next document is read by a fresh worker.
        ok = await upload_one(server, user, "after.txt", b"plain words after the bomb")
        await wait_status(server, user, f"/api/v1/documents/{ok}", timeout=30)
    finally:
        await server.close()


async def test_pathological_pdf_times_out_and_other_users_are_not_starved(
    make_settings: Any,
) -> None:
    # Each PDF would take a minute or more to read; the timeout stops it at 15 s. With two
    # workers, the attacker's three PDFs take one: the bystander's note never waits.
    server = await start_parlour(make_settings(ingest__extract_timeout_seconds=15))
    try:
        attacker, bystander = await server.signup(), await server.signup()
        pdf = pathological_pdf()
        assert len(pdf) < 20_000
        slow = [await upload_one(server, attacker, f"slow{i}.pdf", pdf) for i in range(3)]
        await wait_until(lambda: _positive(extractions_running(server)))
        started = time.monotonic()
        innocent = await upload_one(server, bystander, "hello.txt", b"A small note from me.")
        waiter = asyncio.create_task(
            wait_status(server, bystander, f"/api/v1/documents/{innocent}", timeout=10))
        while not waiter.done():
            await health_answers(server)
            await asyncio.sleep(0.2)
        await waiter
        print(f"bystander's document ready {time.monotonic() - started:.1f} s after upload")
        failed = await wait_status(server, attacker, f"/api/v1/documents/{slow[0]}",
                                   want="failed", timeout=30)
        assert "ingest.extract_timeout_seconds" in failed["error"], failed
        assert failed["error_code"] == "payload_too_large"
    finally:
        await server.close()


async def _positive(value: Any) -> bool:
    return float(await value) > 0


async def test_deleting_a_document_kills_its_extraction(make_settings: Any) -> None:
    server = await start_parlour(make_settings(ingest__extract_timeout_seconds=300))
    try:
        user = await server.signup()
        document_id = await upload_one(server, user, "slow.pdf", pathological_pdf())
        await wait_until(lambda: _positive(extractions_running(server)))
        [pid] = worker_pids()
        status, _ = await server.request("DELETE", f"/api/v1/documents/{document_id}", user)
        assert status == 204

        async def killed() -> bool:
            return pid not in worker_pids() and not await _positive(extractions_running(server))

        await wait_until(killed, timeout=5)
        ok = await upload_one(server, user, "next.txt", b"the next document of the same user")
        await wait_status(server, user, f"/api/v1/documents/{ok}", timeout=30)
    finally:
        await server.close()


async def test_shutdown_kills_running_extractions_promptly(make_settings: Any) -> None:
    server = await start_parlour(make_settings(ingest__extract_timeout_seconds=300))
    closed = False
    try:
        user = await server.signup()
        await upload_one(server, user, "slow.pdf", pathological_pdf())
        await wait_until(lambda: _positive(extractions_running(server)))
        assert worker_pids()
        started = time.monotonic()
        await server.close()
        closed = True
        assert time.monotonic() - started < 5
        assert not worker_pids()
    finally:
        if not closed:
            await server.close()


@pytest.mark.parametrize("name", ["notes.txt", "page.html"])
async def test_text_over_the_extracted_chars_cap_fails_naming_it(
    make_settings: Any, name: str,
) -> None:
    server = await start_parlour(make_settings(ingest__max_extracted_chars=1000))
    try:
        user = await server.signup()
        document_id = await upload_one(server, user, name, b"words and more words " * 200)
        failed = await wait_status(server, user, f"/api/v1/documents/{document_id}",
                                   want="failed")
        assert "ingest.max_extracted_chars" in failed["error"], failed
    finally:
        await server.close()


async def test_a_worker_killed_while_idle_is_replaced(parlour: Parlour) -> None:
    user = await parlour.signup()
    first = await upload_one(parlour, user, "first.txt", b"the first note")
    await wait_status(parlour, user, f"/api/v1/documents/{first}", timeout=30)
    for pid in worker_pids():
        os.kill(pid, signal.SIGKILL)

    async def reaped() -> bool:
        return not worker_pids()

    await wait_until(reaped, timeout=5)
    second = await upload_one(parlour, user, "second.txt", b"the second note")
    await wait_status(parlour, user, f"/api/v1/documents/{second}", timeout=30)
