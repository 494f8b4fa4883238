"""docker-compose.yml and deploy/nginx.conf: what a two-node deployment needs.

`podman-compose config` (from PyPI, in the test extra; `--dry-run` needs no podman)
parses and merges the file the way a deployment does; the merged result is checked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
NGINX = REPO / "deploy" / "nginx.conf"
SECRET = "compose-test-secret-0123456789abcdef"
NODES = ("node1", "node2")


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("podman-compose", path=search)
    if exe is None:
        pytest.skip("podman-compose is not installed (it is in the test extra: pip install -e '.[test]')")
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PARLOUR_", "MINIO_")) and not k.endswith("_API_KEY")}
    return subprocess.run(
        [exe, "--dry-run", "-f", str(COMPOSE), "config"],
        cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = _compose({"PARLOUR_AUTH__JWT_SECRET": SECRET})
    assert result.returncode == 0, result.stderr[-3000:]
    merged: dict[str, Any] = yaml.safe_load(result.stdout)
    return merged


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _healthy_deps(service: dict[str, Any]) -> set[str]:
    deps = service.get("depends_on", {})
    return {name for name, spec in deps.items() if spec.get("condition") == "service_healthy"}


def test_every_service_has_a_health_check(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == {*NODES, "nginx", "mongo", "redis", "minio"}
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_nodes_share_mongo_redis_and_a_bucket_they_create(config: dict[str, Any]) -> None:
    services = config["services"]
    minio = _env(services["minio"])
    node_ids = set()
    for name in NODES:
        node = services[name]
        env = _env(node)
        build = node["build"]
        context = build["context"] if isinstance(build, dict) else build
        assert (REPO / context).resolve() == REPO, "nodes are built from this repository"
        assert env["PARLOUR_SERVER__PRODUCTION"] == "true"
        assert env["PARLOUR_AUTH__JWT_SECRET"] == SECRET
        assert env["PARLOUR_MONGO__URI"].startswith("mongodb://mongo:27017/")
        assert env["PARLOUR_REDIS__URL"] == "redis://redis:6379/0"
        assert env["PARLOUR_BLOBS__BACKEND"] == "s3"
        assert env["PARLOUR_BLOBS__S3_CREATE_BUCKET"] == "true"
        assert env["PARLOUR_BLOBS__S3_ENDPOINT_URL"] == "http://minio:9000"
        # The nodes sign in to MinIO with its root account.
        assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
        assert _healthy_deps(node) == {"mongo", "redis", "minio"}
        assert not node.get("ports"), "nodes are reached through nginx only"
        node_ids.add(env["PARLOUR_SERVER__NODE_ID"])
    assert len(node_ids) == len(NODES)


def test_nginx_fronts_every_node(config: dict[str, Any]) -> None:
    nginx = config["services"]["nginx"]
    assert _healthy_deps(nginx) == set(NODES)
    mounts = [str(v) for v in nginx.get("volumes", [])]
    assert any("deploy/nginx.conf" in m and "/etc/nginx/conf.d/default.conf" in m
               for m in mounts), mounts
    # The nodes listen where the image says (Dockerfile ENV PARLOUR_SERVER__PORT).
    port = re.search(r"PARLOUR_SERVER__PORT=(\d+)", (REPO / "Dockerfile").read_text())
    assert port is not None
    conf = NGINX.read_text()
    upstream = re.search(r"upstream\s+parlour\s*\{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = set(re.findall(r"^\s*server\s+(\S+?)(?:\s|;)", upstream.group(1), re.M))
    assert servers == {f"{name}:{port.group(1)}" for name in NODES}
    # Sticky sessions for Engine.IO long-polling.
    assert re.search(r"^\s*(ip_hash|hash\s+\S+)", upstream.group(1), re.M)
    # WebSocket upgrade passes through.
    assert re.search(r"proxy_http_version\s+1\.1;", conf)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", conf)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", conf)
    read_timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", conf)
    assert read_timeout is not None and int(read_timeout.group(1)) >= 60
    # The browser's host:port reaches the nodes (they check Origin against it).
    assert re.search(r"proxy_set_header\s+Host\s+\$http_host;", conf)
    # Slow clients cannot hold connections open (slowloris).
    for name, most in (("client_header_timeout", 30), ("client_body_timeout", 60),
                       ("send_timeout", 60)):
        found = re.search(rf"^\s*{name}\s+(\d+)s;", conf, re.M)
        assert found is not None and int(found.group(1)) <= most, name


def test_missing_jwt_secret_is_refused_with_its_name() -> None:
    result = _compose({})
    assert result.returncode != 0
    assert "PARLOUR_AUTH__JWT_SECRET" in result.stdout + result.stderr
