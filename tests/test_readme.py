"""The README's code blocks, run as printed against a live `parlour serve` (issue 12, §3).

Every ```sh and ```python block of README.md runs, in order, against a server started the
way the README starts it (`parlour serve`, data in ./data of the working directory). The
only changes: `localhost:8000` / `127.0.0.1:8000` point at the test's port, `.venv/bin/`
at this environment's scripts, and `make ...` lines are skipped (they install and start
what this test already has). The assistant is the real SmolLM2 on the session's
llama-server, with short replies.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.llm.local_server import LocalLlamaServer
from tests.servers import free_port, wait_port

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    """The README's code blocks in one language, in order."""
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def as_run_here(code: str, port: int) -> str:
    """The block pointed at this test's server and environment."""
    code = re.sub(r"(localhost|127\.0\.0\.1):8000", f"127.0.0.1:{port}", code)
    code = code.replace(".venv/bin/", f"{BIN}/")
    return "\n".join(line for line in code.splitlines() if not line.startswith("make "))


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, llama_server: LocalLlamaServer
) -> Iterator[tuple[Path, int, dict[str, str]]]:
    """`parlour serve` in a fresh working directory; (cwd, port, environment)."""
    cwd = tmp_path_factory.mktemp("newcomer")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLOUR_")}
    env.update({
        "PARLOUR_LLM__EXTRA_OPENAI_COMPATIBLE__LOCAL": llama_server.base_url,
        "LOCAL_API_KEY": llama_server.api_key,
        "PARLOUR_ASSISTANT__MAX_OUTPUT_TOKENS": "24",
    })
    with (cwd / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "parlour"), "serve", "--port", str(port)], cwd=cwd, env=env,
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 90, proc)
        yield cwd, port, env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, f"{command[:2]} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_readme_lists_runnable_examples() -> None:
    assert len(blocks("sh")) >= 3 and len(blocks("python")) == 1
    assert "asyncio.run(main())" in blocks("python")[0]


def test_readme_blocks_run_as_printed(served: tuple[Path, int, dict[str, str]]) -> None:
    cwd, port, env = served
    shell, python = [], []
    for language, block in FENCE.findall(README.read_text()):  # in the README's order
        code = as_run_here(block, port)
        if language == "sh" and code.strip():
            shell.append(run(["bash", "-euo", "pipefail", "-c", code], cwd, env))
        elif language == "python":
            python.append(run([sys.executable, "-c", code], cwd, env))
    said = "\n".join(shell)
    assert '"answer"' in said and '"error"' not in said  # the /run example answered
    assert "created admin root@example.com" in said
    assert "ada@example.com is now an admin" in said
    assert "server:  running, pid" in said and "status:" in said  # check asked the server

    (out,) = python
    assert "token for grace@example.com: from POST /api/v1/auth/signup" in out
    assert "token for alan@example.com: from POST /api/v1/auth/signup" in out
    assert "alan sees grace: @assistant what is a parlour?" in out
    answer = out.split("assistant:", 1)[1].strip()
    assert answer, out  # the assistant answered in the shared room, streamed to alan
