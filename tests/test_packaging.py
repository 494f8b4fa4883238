"""The wheel carries the web client, and an installed copy serves `/` and `/docs`.

Built the way a user builds it: sdist, then a wheel from the sdist (`python -m build`),
from a copy of the files git knows (so nothing untracked, build/ or egg-info leaks in).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, stop, wait_port

REPO = Path(__file__).resolve().parent.parent
MARKER = b"<!-- served from the installed wheel -->"


def _checkout_files() -> list[str]:
    """Files git tracks or would track (not ignored) in this checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean clone has")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def _web_files() -> list[str]:
    """The web client's files, relative to web/."""
    return sorted(
        name.removeprefix("web/") for name in _checkout_files() if name.startswith("web/")
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """sdist and wheel of a clean copy of the checkout."""
    source = tmp_path_factory.mktemp("source")
    for name in _checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield out


def test_wheel_and_sdist_carry_the_web_client(dist: Path) -> None:
    web = _web_files()
    assert "index.html" in web and any(n.startswith("vendor/swagger/") for n in web)
    (wheel,) = dist.glob("parlour-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in web if f"app/web/{n}" not in names]
    assert not missing, f"web files missing from the wheel: {missing}"
    assert {"app/main.py", "handlers/routes.py", "storage/blobs.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "web/", "bench/"))]
    (sdist,) = dist.glob("parlour-*.tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {f"web/{n}" for n in web} <= in_sdist


def test_installed_copy_serves_web_client_and_docs(dist: Path, mongo_uri: str,
                                                   tmp_path: Path) -> None:
    (wheel,) = dist.glob("parlour-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )
    # Mark the installed index.html: `/` must serve the installed package's copy (the
    # server runs outside the checkout, with only the installed copy on its path).
    index = site / "app" / "web" / "index.html"
    index.write_bytes(index.read_bytes() + MARKER)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PARLOUR_") and not k.endswith("_API_KEY")}
    env.update(
        PYTHONPATH=str(site),
        PARLOUR_MONGO__URI=mongo_uri,
        PARLOUR_MONGO__DATABASE=f"t_{uuid.uuid4().hex[:12]}",
        PARLOUR_LLM__LOCAL_ENABLED="false",
        PARLOUR_SERVER__LOG_FORMAT="text",
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port),
             "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 60, proc)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert resp.status == 200 and resp.headers.get_content_type() == "text/html"
            assert MARKER in resp.read()
        with urllib.request.urlopen(base + "/docs", timeout=10) as resp:
            page = resp.read().decode()
            assert resp.status == 200 and "swagger-ui" in page
        with urllib.request.urlopen(base + "/vendor/swagger/swagger-ui-bundle.js",
                                    timeout=10) as resp:
            assert resp.status == 200 and len(resp.read()) > 100_000
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
