"""The REST API against its own OpenAPI description: fuzzed by schemathesis, never a 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from tests.servers import free_port, wait_port

BIN = Path(sys.executable).parent


def _signup(url: str) -> str:
    req = urllib.request.Request(
        f"{url}/api/v1/auth/signup", method="POST",
        data=json.dumps({"email": f"fuzz{uuid.uuid4().hex[:6]}@example.com",
                         "password": "long enough", "name": "Fuzz"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.load(resp)["access_token"])


async def test_fuzzed_requests_never_crash_the_server(mongo_uri: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLOUR_")}
    env.update({
        "PARLOUR_MONGO__URI": mongo_uri, "PARLOUR_MONGO__DATABASE": f"fz{uuid.uuid4().hex[:8]}",
        "PARLOUR_AUTH__JWT_SECRET": "fuzz-secret-0123456789-0123456789",
        # The real local model answers /run (short replies keep the run fast).
        "PARLOUR_ASSISTANT__MAX_OUTPUT_TOKENS": "4", "PARLOUR_SERVER__LOG_LEVEL": "WARNING",
    })
    server = subprocess.Popen(
        [str(BIN / "parlour"), "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.to_thread(wait_port, port, 60, server)
        token = await asyncio.to_thread(_signup, url)
        fuzz = await asyncio.create_subprocess_exec(
            str(BIN / "schemathesis"), "run", f"{url}/openapi.json",
            "--checks", "not_a_server_error", "--max-examples", "5",
            "-H", f"Authorization: Bearer {token}", "--request-timeout", "20",
            # Uploads need files, not fuzzed JSON; aisuite/chat would generate up to
            # max_tokens=32768 on a CPU model per case; speech needs real audio (and
            # speaks each fuzzed answer on the CPU): tests/test_media_speech.py covers it.
            "--exclude-path-regex", "upload|documents$|aisuite|audio",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        out, _ = await asyncio.wait_for(fuzz.communicate(), 300)
        report = out.decode(errors="replace")
        assert fuzz.returncode == 0, report[-4000:]
        tested = re.search(r"Tested: (\d+)", report)
        assert tested is not None and int(tested.group(1)) >= 20, report[-2000:]
    finally:
        server.send_signal(signal.SIGTERM)
        log, _ = await asyncio.to_thread(server.communicate, None, 30)
    # No handler of ours logged an unexpected exception (aiohttp's own parser may log
    # the malformed requests it refuses with 400).
    ours = [line for line in log.decode().splitlines()
            if '"level":"ERROR"' in line and '"logger":"aiohttp' not in line]
    assert ours == [], "\n".join(ours)[-3000:]
