"""The `parlour` command line: serve, check, users create|set-admin|delete|list."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from app import __version__
from app.cli_users import (
    CliError,
    create,
    delete,
    list_accounts,
    read_password,
    set_admin,
    validate_signup,
)
from app.config import ConfigError, Settings, load_settings
from app.config_env import unknown_variables
from app.errors import AppError
from app.logs import setup_logging
from app.node_file import NodeInfo, remove_node, running_node, write_node
from app.startup_checks import StartupError, bind_sockets, check_data_dir_free, local_url

HEALTH_TIMEOUT = 10.0
GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython: 700)


def _settings(args: argparse.Namespace) -> Settings:
    problems = unknown_variables(os.environ)
    if problems:
        raise ConfigError("; ".join(problems))
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "host", None):
        overrides["server__host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["server__port"] = args.port
    config = getattr(args, "config", None)
    settings = load_settings(Path(config) if config else None, **overrides)
    # Explicit command-line flags win over the environment too.
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir)
    if getattr(args, "host", None):
        settings.server.host = args.host
    if getattr(args, "port", None) is not None:
        settings.server.port = args.port
    return settings


def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM."""
    settings = _settings(args)
    setup_logging(settings.server.log_format, settings.server.log_level, settings.server.production)
    data_dir = settings.data_dir.resolve()
    settings.jwt_secret_value()  # an unreadable or short secret file fails here, at once
    check_data_dir_free(settings)
    # Bound before anything slow (imports, the database, the local model): a busy port
    # is reported at once.
    socks = bind_sockets(settings.server.host, settings.server.port, data_dir)
    try:
        return _serve(settings, socks)
    finally:
        for sock in socks:
            sock.close()
        # Everything is closed: the objects the server loaded (models, tokenizers, the
        # app) are left to the exit. Frozen, the interpreter's final collections skip
        # them instead of walking millions of objects (seconds on a stop).
        gc.freeze()


def _serve(settings: Settings, socks: list[socket.socket]) -> int:
    # The server's modules load only for the commands that need them (a quick CLI).
    import uvloop
    from aiohttp import web

    from app.keys import MONGO, SERVICES
    from app.main import create_app

    data_dir = settings.data_dir.resolve()
    app = create_app(settings)
    pid = os.getpid()

    async def announce(app: web.Application) -> None:
        # Runs after every cleanup_ctx resource is open (the node id and database exist).
        embedded = app[MONGO].uri if settings.mongo.uri is None else None
        write_node(data_dir, NodeInfo(
            url=local_url(socks[0]), pid=pid, node_id=app[SERVICES].node_id,
            version=__version__, mongo_uri=embedded,
        ))
        # What startup made (modules, classes, validators, the app) lives as long as the
        # process: frozen, the collector's full passes, every hundred messages or so
        # under load, walk only what the server made since, not the whole heap again.
        gc.collect()
        gc.freeze()
        # A young generation of 10,000 objects, not 700: what a request or a delta makes
        # mostly dies before the collector looks, so far fewer objects reach the old
        # generation, whose full passes walk every socket's objects (10,000 sockets:
        # 1.3 million objects, ~0.3 s a pass; 16 passes while they connected, 2 now).
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    async def withdraw(app: web.Application) -> None:
        remove_node(data_dir, pid)

    app.on_startup.append(announce)
    app.on_shutdown.insert(0, withdraw)
    try:
        web.run_app(
            app,
            sock=socks,
            shutdown_timeout=settings.server.shutdown_timeout_seconds,
            # aiohttp arms it from the connection's start: the deadline for a request head.
            keepalive_timeout=settings.server.header_timeout_seconds,
            loop=uvloop.new_event_loop(),
            access_log=None,
            print=lambda msg: print(msg, flush=True),
        )
    finally:
        remove_node(data_dir, pid)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    for name, result in report["checks"].items():
        state = "ok" if result["ok"] else "FAILED"
        print(f"  {name:<8} {state:<6} {result['latency_ms']:>7} ms  {result['detail']}")
    print(f"status: {report['status']}")


def _ask_node(node: NodeInfo, settings: Settings) -> dict[str, Any]:
    """The running node's /internal/health report."""
    request = urllib.request.Request(f"{node.url}/internal/health")
    token = getattr(settings.server, "internal_token", None)
    if token:
        secret = token.get_secret_value() if hasattr(token, "get_secret_value") else str(token)
        request.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT) as response:
            data: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code != 503:  # "down" still carries the report
            raise CliError(f"the running server at {node.url} answered {exc.code}") from exc
        data = json.load(exc)
    except (OSError, ValueError) as exc:
        raise CliError(
            f"the running server (pid {node.pid}) at {node.url} does not answer: {exc}"
        ) from exc
    return data


def check(args: argparse.Namespace) -> int:
    """Print the selected backends and whether each answers (asking the running node)."""
    settings = _settings(args)
    print(f"mongo:   {settings.mongo.uri or 'embedded SecantusDB in ' + str(settings.data_dir)}")
    print(f"redis:   {settings.redis.url or 'none (single node, in-process)'}")
    node = running_node(settings.data_dir.resolve())
    if node is not None:
        print(f"server:  running, pid {node.pid}, {node.url} (node {node.node_id})")
        report = _ask_node(node, settings)
        _print_report(report)
        return 0 if report["status"] != "down" else 1
    print("server:  not running; starting the backends here to test them")
    from aiohttp import web

    from app.keys import SERVICES
    from app.main import create_app

    async def work() -> int:
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        try:
            report = await runner.app[SERVICES].health.report()
        finally:
            await runner.cleanup()
        _print_report(report)
        return 0 if report["status"] != "down" else 1

    return asyncio.run(work())


def users_create(args: argparse.Namespace) -> int:
    """Create an account (admin bootstrap)."""
    settings = _settings(args)
    name = args.name or args.email.split("@")[0]
    validate_signup(settings, args.email, None, name)  # a bad email before the prompt
    req = validate_signup(settings, args.email, read_password(args), name)
    print(asyncio.run(create(settings, req, args.admin)))
    return 0


def users_set_admin(args: argparse.Namespace) -> int:
    """Grant (or with --revoke, take away) admin rights."""
    settings = _settings(args)
    print(asyncio.run(set_admin(settings, args.email, not args.revoke)))
    return 0


def users_delete(args: argparse.Namespace) -> int:
    """Delete an account (its sessions end at once)."""
    settings = _settings(args)
    print(asyncio.run(delete(settings, args.email)))
    return 0


def users_list(args: argparse.Namespace) -> int:
    """List the accounts."""
    settings = _settings(args)
    for line in asyncio.run(list_accounts(settings)):
        print(line)
    return 0


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    # Accepted before and after the subcommand: the subcommands' copies default to
    # SUPPRESS so they never erase a value given before the subcommand.
    parser.add_argument("--config", default=default, help="path to a config.toml")
    parser.add_argument("--data-dir", default=default, help="data directory (default ./data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parlour", description=__doc__)
    _global_options(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the server", parents=[common])
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.set_defaults(func=serve)

    p_users = sub.add_parser("users", help="manage accounts", parents=[common])
    users_sub = p_users.add_subparsers(dest="users_command", required=True)
    p_create = users_sub.add_parser("create", help="create an account", parents=[common])
    p_create.add_argument("--email", required=True)
    p_create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p_create.add_argument(
        "--password", help="the password (visible to other local users; prefer a prompt)"
    )
    p_create.add_argument("--name")
    p_create.add_argument("--admin", action="store_true")
    p_create.set_defaults(func=users_create)
    p_admin = users_sub.add_parser(
        "set-admin", help="make an existing account admin", parents=[common]
    )
    p_admin.add_argument("--email", required=True)
    p_admin.add_argument("--revoke", action="store_true", help="take admin rights away")
    p_admin.set_defaults(func=users_set_admin)
    p_delete = users_sub.add_parser(
        "delete", help="delete an account; its sessions end at once", parents=[common]
    )
    p_delete.add_argument("--email", required=True)
    p_delete.set_defaults(func=users_delete)
    p_list = users_sub.add_parser("list", help="list the accounts", parents=[common])
    p_list.set_defaults(func=users_list)

    p_check = sub.add_parser(
        "check", help="show the configured backends and test them", parents=[common]
    )
    p_check.set_defaults(func=check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, StartupError, CliError, AppError) as exc:
        print(f"parlour: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
