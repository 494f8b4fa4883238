"""The real `openai` npm package under Node's test runner, against a live server (/v1).

tests/js_sdk/ pins the package (package-lock.json); it is installed there with `npm ci`
when missing, so `node --test tests/js/` (the client's unit tests) needs no npm install.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.llm.base import ToolCall
from tests.client import start_parlour
from tests.scripted_provider import ScriptedProvider

SDK_DIR = Path(__file__).resolve().parent / "js_sdk"


async def _npm_ci() -> None:
    if (SDK_DIR / "node_modules" / "openai" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("the JavaScript SDK test needs npm (apt-get install npm)")
        return
    proc = await asyncio.create_subprocess_exec(
        npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", cwd=SDK_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    if proc.returncode != 0:
        _unavailable(f"npm ci in {SDK_DIR} failed (no registry?):\n{out.decode()[-1500:]}")


def _unavailable(reason: str) -> None:
    """Outside CI a machine without npm (or the registry) skips this test; CI must run it."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


async def test_the_openai_npm_package_against_a_live_server(make_settings: Any) -> None:
    await _npm_ci()
    provider = ScriptedProvider()
    provider.tool_script = [(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)]
    server = await start_parlour(make_settings(llm__default_model="scripted:fixed"),
                                 providers={"scripted": provider})
    try:
        user = await server.signup()
        keys = []
        for name in ("node", "revoked"):
            status, created = await server.request("POST", "/api/v1/keys", user,
                                                   json={"name": name})
            assert status == 201
            keys.append(created)
        status, _ = await server.request("DELETE", f"/api/v1/keys/{keys[1]['id']}", user)
        assert status == 204
        env = {**os.environ, "PARLOUR_URL": server.url, "PARLOUR_KEY": keys[0]["key"],
               "PARLOUR_REVOKED_KEY": keys[1]["key"]}
        proc = await asyncio.create_subprocess_exec(
            "node", "--test", "--test-concurrency=1", str(SDK_DIR / "gateway.test.mjs"),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        report = out.decode(errors="replace")
        assert proc.returncode == 0, report[-4000:]
        assert "# pass 5" in report and "# fail 0" in report, report[-2000:]
    finally:
        await server.close()
