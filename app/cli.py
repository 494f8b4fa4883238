"""The `parlour` command line: serve, users create, check."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from app.config import ConfigError, Settings, load_settings
from app.errors import AppError
from app.keys import SERVICES
from app.logs import setup_logging
from app.main import StartupError, create_app
from app.services import Services


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "host", None):
        overrides["server__host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["server__port"] = args.port
    settings = load_settings(Path(args.config) if args.config else None, **overrides)
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
    import uvloop

    app = create_app(settings)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_timeout_seconds,
        loop=uvloop.new_event_loop(),
        access_log=None,
        print=lambda msg: print(msg, flush=True),
    )
    return 0


async def _with_services(settings: Settings, work: Callable[[Services], Awaitable[int]]) -> int:
    """Start the app's resources without listening, run `work`, clean up."""
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        return await work(runner.app[SERVICES])
    finally:
        await runner.cleanup()


def users_create(args: argparse.Namespace) -> int:
    """Create an account (admin bootstrap)."""
    settings = _settings(args)
    password = args.password or getpass.getpass("Password: ")

    async def work(services: Services) -> int:
        user = await services.auth.create_user(
            args.email, password, args.name or args.email.split("@")[0], is_admin=args.admin
        )
        role = "admin" if user.is_admin else "user"
        print(f"created {role} {user.email} ({user.user_id})")
        return 0

    return asyncio.run(_with_services(settings, work))


def check(args: argparse.Namespace) -> int:
    """Print the selected backends and whether each answers."""
    settings = _settings(args)
    print(f"mongo:   {settings.mongo.uri or 'embedded SecantusDB in ' + str(settings.data_dir)}")
    print(f"redis:   {settings.redis.url or 'none (single node, in-process)'}")

    async def work(services: Services) -> int:
        report = await services.health.report()
        for name, result in report["checks"].items():
            state = "ok" if result["ok"] else "FAILED"
            print(f"  {name:<8} {state:<6} {result['latency_ms']:>7} ms  {result['detail']}")
        print(f"status: {report['status']}")
        return 0 if report["status"] != "down" else 1

    return asyncio.run(_with_services(settings, work))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parlour", description=__doc__)
    parser.add_argument("--config", help="path to a config.toml")
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the server")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    p_serve.add_argument("--data-dir")
    p_serve.set_defaults(func=serve)

    p_users = sub.add_parser("users", help="manage accounts")
    users_sub = p_users.add_subparsers(dest="users_command", required=True)
    p_create = users_sub.add_parser("create", help="create an account")
    p_create.add_argument("--email", required=True)
    p_create.add_argument("--password", help="prompted for when omitted")
    p_create.add_argument("--name")
    p_create.add_argument("--admin", action="store_true")
    p_create.add_argument("--data-dir")
    p_create.set_defaults(func=users_create)

    p_check = sub.add_parser("check", help="show the configured backends and test them")
    p_check.add_argument("--data-dir")
    p_check.set_defaults(func=check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, StartupError, AppError) as exc:
        print(f"parlour: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
