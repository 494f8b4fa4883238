"""Fixtures for blobs, vectors and embeddings (moto S3, Pinecone stub)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.pinecone_stub import PineconeStub

MOTO_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto S3 server on a free loopback port, for the whole session."""
    port = free_port()
    binary = Path(sys.executable).with_name("moto_server")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file, stderr=log_file, env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_http(url, process, MOTO_START_TIMEOUT)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@asynccontextmanager
async def pinecone_index() -> AsyncIterator[str]:
    """A fresh Pinecone data-plane stub on a free loopback port; yields its host URL."""
    stub = PineconeStub()
    url = await stub.start("127.0.0.1", 0)
    try:
        yield url
    finally:
        await stub.close()


@pytest.fixture(scope="session")
async def pinecone_stub() -> AsyncIterator[str]:
    """The session's Pinecone stub (its index dimension is fixed by the first upsert)."""
    async with pinecone_index() as url:
        yield url
