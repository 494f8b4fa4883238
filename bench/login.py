"""Log-in duration for an existing email (wrong password) against an unknown email.

    .venv/bin/python -m bench.login [--attempts 20]

Starts SecantusDB and Parlour on loopback. Equal durations mean a log-in does not tell
who has an account (issue 13: 103 ms against 1.2 ms before the dummy hash).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from app.config import load_settings
from storage.embedded_mongo import EmbeddedMongo
from tests.client import Parlour, start_parlour


async def duration(server: Parlour, email: str) -> float:
    started = time.perf_counter()
    status, _ = await server.request(
        "POST", "/api/v1/auth/login", json={"email": email, "password": "not the password"}
    )
    assert status == 401, status
    return (time.perf_counter() - started) * 1000


async def main(attempts: int) -> None:
    mongo = EmbeddedMongo(":memory:")
    uri = await mongo.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, data_dir=str(Path(tmp)), mongo__uri=uri,
            mongo__database=f"b{uuid.uuid4().hex[:8]}",
            auth__jwt_secret="bench-secret-0123456789-0123456789", llm__local_enabled=False,
            auth__login_max_failures=10 * attempts, server__log_level="WARNING",
            server__log_format="text",
        )
        server = await start_parlour(settings)
        try:
            user = await server.signup()
            await duration(server, "warm.up@example.com")
            known = [await duration(server, user.email) for _ in range(attempts)]
            unknown = [await duration(server, f"nobody{i}@example.com") for i in range(attempts)]
            for name, values in (("existing email", known), ("unknown email", unknown)):
                print(f"{name:15} median {statistics.median(values):7.1f} ms  "
                      f"min {min(values):7.1f} ms  max {max(values):7.1f} ms")
        finally:
            await server.close()
    await mongo.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=20)
    asyncio.run(main(parser.parse_args().attempts))
