"""Print the podman flags that lend this machine's pip configuration to an image build.

One `-v SRC:DST:ro` per line: the global and user pip configuration files, the files and
directories they name (constraints, certificates, local indexes and find-links), and the
system CA certificate directory, each read-only at the same path (user files under
/root, the build's home). pip inside the build then reaches PyPI as it does here; the
mounts are never part of an image layer. Standard library only: runs on any python3.
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

CA_DIR = Path("/etc/ssl/certs")
BUILD_HOME = Path("/root")
PATH_KEYS = {"cert", "client-cert", "constraint", "constraints", "requirement"}
LOCATION_KEYS = {"find-links", "index-url", "extra-index-url"}


def config_files() -> list[tuple[Path, Path]]:
    """(host path, path in the build) of every pip configuration file that exists."""
    home = Path.home()
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    xdg_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    found = [(Path(d) / "pip" / "pip.conf",) * 2 for d in xdg_dirs if d]
    found.append((Path("/etc/pip.conf"),) * 2)
    found.append((xdg_home / "pip" / "pip.conf", BUILD_HOME / ".config" / "pip" / "pip.conf"))
    found.append((home / ".pip" / "pip.conf", BUILD_HOME / ".pip" / "pip.conf"))
    return [(src, dst) for src, dst in found if src.is_file()]


def named_paths(config: Path) -> list[Path]:
    """Local files and directories that one configuration file names."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config)
    except configparser.Error as exc:
        print(f"pip_mounts: skipping {config}: {exc}", file=sys.stderr)
        return []
    paths: list[Path] = []
    for section in parser.sections():
        for key, value in parser.items(section):
            if key in PATH_KEYS:
                paths.extend(Path(v) for v in value.split())
            elif key in LOCATION_KEYS:
                for location in value.split():
                    url = urlparse(location)
                    if url.scheme == "file":
                        path = Path(unquote(url.path))
                        # A local index's pages link to ../../files/...: lend its root.
                        paths.append(path.parent if path.name == "simple" else path)
                    elif not url.scheme and location.startswith("/"):
                        paths.append(Path(location))
    return [p for p in paths if p.is_absolute() and p.exists()]


def mounts() -> list[tuple[Path, Path]]:
    chosen: list[tuple[Path, Path]] = []
    if CA_DIR.is_dir():
        chosen.append((CA_DIR, CA_DIR))
    for src, dst in config_files():
        chosen.append((src, dst))
        chosen.extend((p, p) for p in named_paths(src))
    unique: list[tuple[Path, Path]] = []
    for src, dst in chosen:
        # Skip duplicates and anything inside a directory that is mounted already.
        if any(dst == d or (s.is_dir() and dst.is_relative_to(d)) for s, d in unique):
            continue
        unique.append((src, dst))
    return unique


if __name__ == "__main__":
    for src, dst in mounts():
        print(f"-v={src}:{dst}:ro")
