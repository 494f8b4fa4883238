"""Ship the web client in the wheel: web/ is copied to app/web (package data).

Everything else about the package is in pyproject.toml. An editable install keeps
serving web/ from the checkout (app.main looks for app/web first, then ../web).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEB_SOURCE = Path(__file__).resolve().parent / "web"


class BuildPyWithWeb(build_py):
    """build_py, plus every file under web/ (dot files excepted) as app/web/..."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not (WEB_SOURCE / "index.html").is_file():
            raise SystemExit(f"{WEB_SOURCE}/index.html is missing: the web client must ship")
        for source in sorted(WEB_SOURCE.rglob("*")):
            relative = source.relative_to(WEB_SOURCE)
            if source.is_dir() or any(part.startswith(".") for part in relative.parts):
                continue
            target = Path(self.build_lib, "app", "web", relative)
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildPyWithWeb})
