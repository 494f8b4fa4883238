"""The container image, run as a user runs it (`make image-test`; not part of `make test`).

Starts the image built by `make image` with podman (host networking, our
containers.conf), then from outside the container: loads the web client and the API docs,
signs up, and gets a streamed answer from the embedded local model over Socket.IO; then
stops the container and expects a clean exit. Standard library, aiohttp and
python-socketio only, so it runs from a small virtualenv (see the Makefile).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

REPO = Path(__file__).resolve().parent.parent
PODMAN = str(REPO / "scripts" / "podman.sh")
IMAGE = os.environ.get("PARLOUR_IMAGE", "parlour:latest")
RUN_FLAGS = ["--network", "host", "--ulimit", "nofile=16384:16384",
             "--ulimit", "nproc=4096:4096"]
REALTIME = "/assistant/realtime"
START_TIMEOUT = 240.0
REPLY_TIMEOUT = 180.0

pytestmark = pytest.mark.timeout(900)


@dataclass
class Container:
    name: str
    url: str


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PODMAN, *args], capture_output=True, text=True, check=check)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _health(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url + "/internal/health", timeout=5) as resp:
            report: dict[str, Any] = json.load(resp)
            return report
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _running(name: str) -> bool:
    state = _podman("inspect", "--format", "{{.State.Running}}", name, check=False)
    return state.stdout.strip() == "true"


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    if _podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {IMAGE} not found: run `make image` first")
    port = _free_port()
    name = f"parlour-image-test-{uuid.uuid4().hex[:8]}"
    _podman("run", "-d", "--name", name, *RUN_FLAGS,
            "-e", "PARLOUR_SERVER__HOST=127.0.0.1", "-e", f"PARLOUR_SERVER__PORT={port}",
            "-e", "PARLOUR_ASSISTANT__MAX_OUTPUT_TOKENS=48", IMAGE)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        report = None
        while time.monotonic() - started < START_TIMEOUT:
            report = _health(url)
            if report is not None and report.get("status") == "ok":
                break
            if not _running(name):
                pytest.fail("the container exited:\n" + _podman("logs", name).stdout[-4000:])
            time.sleep(1)
        else:
            pytest.fail(f"not healthy after {START_TIMEOUT} s: {report}\n"
                        + _podman("logs", name, check=False).stdout[-4000:])
        print(f"\nimage {IMAGE}: healthy after {time.monotonic() - started:.1f} s")
        yield Container(name, url)
    finally:
        if _running(name):
            _podman("stop", "-t", "5", name, check=False)
        _podman("rm", "-f", "-v", name, check=False)


def test_runs_as_unprivileged_user_without_build_tools(container: Container) -> None:
    uid = _podman("exec", container.name, "id", "-u").stdout.strip()
    assert uid != "0"
    found = _podman("exec", container.name, "sh", "-c",
                    "command -v gcc cc c++ g++ make cmake || true").stdout.split()
    assert found == [], f"build tools in the final image: {found}"
    # The build borrowed this machine's pip configuration; none of it is in the image.
    leftovers = _podman("exec", "--user", "root", container.name, "sh", "-c",
                        "ls -d /etc/pip.conf /etc/xdg/pip /root/.config/pip 2>/dev/null || true")
    assert leftovers.stdout.split() == []


def test_image_health_check_passes(container: Container) -> None:
    # podman runs HEALTHCHECK from systemd timers; without systemd, run it by hand.
    result = _podman("healthcheck", "run", container.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_web_client_and_docs_load(container: Container) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(container.url + "/") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            page = await resp.text()
        assets = re.findall(r'(?:src|href)="(/?[\w./-]+\.(?:js|css))"', page)
        assert any(a.endswith(".js") for a in assets), page[:500]
        for asset in assets:
            async with http.get(f"{container.url}/{asset.lstrip('/')}") as resp:
                assert resp.status == 200, asset
        async with http.get(container.url + "/docs") as resp:
            assert resp.status == 200 and "swagger-ui" in await resp.text()
        async with http.get(container.url + "/openapi.json") as resp:
            assert resp.status == 200 and "/api/v1/auth/signup" in (await resp.json())["paths"]


async def test_signs_up_and_gets_a_streamed_answer(container: Container) -> None:
    email = f"image-{uuid.uuid4().hex[:8]}@example.com"
    signup = {"email": email, "password": "correct horse battery", "name": "Image Test"}
    async with aiohttp.ClientSession() as http, \
            http.post(container.url + "/api/v1/auth/signup", json=signup) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        token = body["access_token"]

    events: list[tuple[str, Any]] = []
    done = asyncio.Event()
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("*", namespace=REALTIME)
    async def record(event: str, data: Any = None) -> None:
        events.append((event, data))
        if event == "assistant_done":
            done.set()

    # Default transports, as a browser connects: long-polling, then the WebSocket upgrade.
    await sio.connect(container.url, namespaces=[REALTIME], auth={"token": token},
                      wait_timeout=10)
    try:
        ack = await sio.call("create_room", {}, namespace=REALTIME, timeout=10)
        assert ack["ok"] is True, ack
        room_id = ack["data"]["room"]["room_id"]
        started = time.monotonic()
        ack = await sio.call("send_message", {"room_id": room_id, "content": "Name a colour."},
                             namespace=REALTIME, timeout=10)
        assert ack["ok"] is True, ack
        await asyncio.wait_for(done.wait(), REPLY_TIMEOUT)
        transport = sio.transport()
    finally:
        await sio.disconnect()
    (final,) = [data for name, data in events if name == "assistant_done"]
    message = final["message"]
    deltas = [d for name, d in events
              if name == "assistant_delta" and d["message_id"] == message["message_id"]]
    assert deltas, "no assistant_delta before assistant_done"
    assert "".join(d["delta"] for d in deltas) == message["content"] != ""
    assert message["model"] == "local:smollm2"
    print(f"\nanswer in {time.monotonic() - started:.1f} s over {transport}, "
          f"{len(deltas)} deltas: {message['content']!r}")


def test_stops_cleanly_on_sigterm(container: Container) -> None:
    started = time.monotonic()
    _podman("stop", "-t", "30", container.name)
    took = time.monotonic() - started
    code = _podman("inspect", "--format", "{{.State.ExitCode}}", container.name).stdout.strip()
    assert code == "0", _podman("logs", container.name, check=False).stdout[-4000:]
    print(f"\nstopped in {took:.1f} s, exit code {code}")
