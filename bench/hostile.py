"""Hostile input benchmark: the server's responsiveness while an attacker uploads.

    .venv/bin/python -m bench.hostile [--parts 200000] [--pdfs 3] [--bomb-mb 200]

Starts SecantusDB and Parlour on loopback and, for each attack, polls /internal/health
every 50 ms from a separate client and reports its latency (p50, p95, max), while:
- multipart: `--parts` empty fields plus one file, to POST /api/v1/documents;
- zip bomb: a docx of `--bomb-mb` MB of XML in a few hundred KB;
- pathological PDF: `--pdfs` PDFs whose 50 pages share one content stream of 140,000
  empty text operators, then a bystander's small text document: time until `ready`.
It also reports the growth of the server's resident memory (it runs in this process).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from app.config import load_settings
from storage.embedded_mongo import EmbeddedMongo
from tests.client import Parlour, User, start_parlour
from tests.test_documents import upload_documents
from tests.test_extraction_sandbox import pathological_pdf, zip_bomb_docx
from tests.test_files import rss_mb, wait_status
from tests.test_hostile_multipart import MULTIPART, many_parts


async def health_latencies(server: Parlour, stop: asyncio.Event) -> list[float]:
    """Milliseconds of each /internal/health call until `stop` is set."""
    latencies: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        async with server.http.get(f"{server.url}/internal/health") as resp:
            await resp.read()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return latencies


async def while_polling(server: Parlour, name: str, attack: Awaitable[Any]) -> Any:
    """Run `attack` with health polled meanwhile; print the latencies and RSS growth."""
    stop = asyncio.Event()
    before = rss_mb()
    poller = asyncio.create_task(health_latencies(server, stop))
    started = time.perf_counter()
    try:
        result = await attack
    finally:
        stop.set()
        latencies = await poller
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    print(f"{name}: {time.perf_counter() - started:.1f} s; health p50 "
          f"{statistics.median(latencies):.0f} ms, p95 {q[18]:.0f} ms, max "
          f"{max(latencies):.0f} ms over {len(latencies)} calls; RSS +{rss_mb() - before:.0f} MB")
    return result


async def upload(server: Parlour, user: User, name: str, data: bytes) -> str:
    status, answer = await upload_documents(server, user, (name, data, None))
    assert status == 202, answer
    document_id: str = answer["documents"][0]["document_id"]
    return document_id


async def run(server: Parlour, parts: int, pdfs: int, bomb_mb: int) -> None:
    attacker, bystander = await server.signup(), await server.signup()
    # Warm up: the embedding model loads with the first document (RSS would count it).
    warm = await upload(server, bystander, "warm.txt", b"warm up the embedding model")
    await wait_status(server, bystander, f"/api/v1/documents/{warm}")
    body = many_parts(parts)
    status, answer = await while_polling(server, f"multipart, {parts} parts", server.request(
        "POST", "/api/v1/documents", attacker, data=io.BytesIO(body),
        headers={"Content-Type": MULTIPART}))
    print(f"  answer {status} {answer['error']['code'] if status >= 400 else ''}")

    bomb = zip_bomb_docx(bomb_mb)
    document_id = await upload(server, attacker, "bomb.docx", bomb)
    failed = await while_polling(
        server, f"zip bomb ({len(bomb) >> 10} KB -> {bomb_mb} MB)",
        wait_status(server, attacker, f"/api/v1/documents/{document_id}", want="failed"))
    print(f"  {failed['error_code']}: {failed['error']}")

    pdf = pathological_pdf()
    slow = [await upload(server, attacker, f"slow{i}.pdf", pdf) for i in range(pdfs)]
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    note = await upload(server, bystander, "note.txt", b"A small note from a bystander.")

    async def attack() -> None:
        await wait_status(server, bystander, f"/api/v1/documents/{note}")
        print(f"  bystander's document ready after {time.perf_counter() - started:.1f} s")
        for document_id in slow:
            done = await wait_status(server, attacker, f"/api/v1/documents/{document_id}",
                                     want="failed", timeout=600)
        print(f"  last PDF: {done['error']}")

    await while_polling(server, f"{pdfs} pathological PDFs ({len(pdf) >> 10} KB each)", attack())


async def main(parts: int, pdfs: int, bomb_mb: int, extract_seconds: float) -> None:
    mongo = EmbeddedMongo(":memory:")
    uri = await mongo.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, data_dir=str(Path(tmp)), mongo__uri=uri,
            mongo__database=f"b{uuid.uuid4().hex[:8]}",
            auth__jwt_secret="bench-secret-0123456789-0123456789", llm__local_enabled=False,
            server__log_level="WARNING", server__log_format="text",
            ingest__extract_timeout_seconds=extract_seconds,
        )
        server = await start_parlour(settings)
        try:
            await run(server, parts, pdfs, bomb_mb)
        finally:
            await server.close()
    await mongo.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=200_000)
    parser.add_argument("--pdfs", type=int, default=3)
    parser.add_argument("--bomb-mb", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="ingest.extract_timeout_seconds")
    args = parser.parse_args()
    asyncio.run(main(args.parts, args.pdfs, args.bomb_mb, args.timeout))
