"""`parlour users create|set-admin|list`: accounts from the command line.

They work whether a server runs or not: with the embedded SecantusDB, a running server
holds the database's lock, so the commands use that server's database (its URI is in
`data_dir/node.json`); with no server they start the embedded database themselves; with a
configured `mongo.uri` they connect to it directly.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.auth import AuthService, check_password
from app.config import Settings
from app.errors import AppError
from app.events import Emitter
from app.node_file import running_node
from app.room_hooks import NoHooks
from app.rooms import RoomService, no_files
from app.schemas import Signup, parse
from app.token_versions import TokenVersions
from app.tokens import TokenIssuer
from storage.control import ControlBus, LocalControlBus, RedisControlBus
from storage.embedded_mongo import EmbeddedMongo
from storage.invites import MongoInviteBook
from storage.messages import MessageStore
from storage.mongo import Mongo, MongoUnavailable
from storage.presence import MemoryPresence
from storage.ratelimit import MemoryRateLimiter
from storage.rooms import RoomStore
from storage.users import RefreshTokenStore, UserStore

LIST_LIMIT = 1000


class CliError(Exception):
    """A command cannot run; the message says what to do."""


class NoTransport:
    """The CLI has no sockets: room events (e.g. an accepted invitation) go nowhere."""

    async def emit(self, event: str, data: dict[str, Any], *, to: str,
                   skip_sid: str | None = None, all_namespaces: bool = False) -> None:
        return None

    async def enter_room(self, sid: str, channel: str) -> None:
        return None

    async def leave_room(self, sid: str, channel: str) -> None:
        return None

    async def leave_user_sockets(self, user_id: str, channel: str) -> None:
        return None


@dataclass(frozen=True)
class Accounts:
    """What the user commands need: the account service and store, and where they are."""

    auth: AuthService
    users: UserStore
    where: str


def _build(settings: Settings, mongo: Mongo, where: str, control: ControlBus) -> Accounts:
    users = UserStore(mongo)
    limiter = MemoryRateLimiter()
    rooms = RoomService(
        settings.limits, RoomStore(mongo), MessageStore(mongo), users, MemoryPresence(),
        limiter, Emitter(NoTransport()), MongoInviteBook(mongo), NoHooks(), no_files,
    )
    # The CLI never issues tokens: any secret will do.
    issuer = TokenIssuer(secrets.token_urlsafe(32), 60, 60)
    auth = AuthService(
        settings.auth, users, RefreshTokenStore(mongo), issuer, limiter,
        TokenVersions(users, control), on_signup=[rooms.accept_invites],
    )
    return Accounts(auth, users, where)


@asynccontextmanager
async def accounts(settings: Settings) -> AsyncIterator[Accounts]:
    """The accounts of the database the server uses (see the module docstring)."""
    data_dir = settings.data_dir.resolve()
    embedded: EmbeddedMongo | None = None
    uri = settings.mongo.uri
    where = f"mongo.uri {uri}"
    if uri is None:
        node = running_node(data_dir)
        if node is not None and node.mongo_uri:
            uri, where = node.mongo_uri, f"the running server's database (pid {node.pid})"
        elif node is not None:
            raise CliError(
                f"the server running on {data_dir} (pid {node.pid}) uses a MongoDB from its "
                "own configuration: run this command with the same mongo.uri "
                "(PARLOUR_MONGO__URI or --config)"
            )
        else:
            embedded = EmbeddedMongo(data_dir / "mongo")
            try:
                uri = await embedded.start()
            except RuntimeError as exc:
                raise CliError(
                    f"cannot open the embedded database in {data_dir / 'mongo'} (a server "
                    "starting on this data directory holds it?): try again once it runs; "
                    f"details in {data_dir / 'secantusdb.log'}"
                ) from exc
            where = f"the embedded database in {data_dir / 'mongo'}"
    mongo = Mongo(uri, settings.mongo.database, settings.mongo.timeout_seconds)
    # With Redis, an account change (deletion) reaches the running nodes at once.
    redis = Redis.from_url(settings.redis.url) if settings.redis.url else None
    control = RedisControlBus(redis) if redis is not None else LocalControlBus()
    try:
        try:
            await mongo.connect()
        except MongoUnavailable as exc:
            raise CliError(f"cannot reach MongoDB at {uri}: {str(exc)[:200]}") from exc
        yield _build(settings, mongo, where, control)
    finally:
        await mongo.close()
        if redis is not None:
            await redis.aclose()
        if embedded is not None:
            await embedded.stop()


def read_password(args: argparse.Namespace) -> str:
    """From --password-stdin, --password, or a prompt; CliError when none can be had."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: standard input held no password")
        return password
    if args.password:
        return str(args.password)
    if not sys.stdin.isatty():
        raise CliError(
            "no password: pipe it in with --password-stdin "
            "(e.g. `printf '%s' \"$PW\" | parlour users create ... --password-stdin`) "
            "or run the command in a terminal to be asked"
        )
    try:
        first = getpass.getpass("Password: ")
        again = getpass.getpass("Password again: ")
    except EOFError as exc:
        raise CliError("no password given") from exc
    if first != again:
        raise CliError("the two passwords differ; nothing was created")
    return first


def validate_signup(
    settings: Settings, email: str, password: str | None, name: str
) -> Signup:
    """The checks of REST sign-up (email, name, password length), before any database work.

    With `password` None only the email and name are checked (before prompting).
    """
    try:
        req = parse(Signup, {"email": email, "password": password or "", "name": name})
        if password is not None:
            check_password(password, settings.auth.min_password_chars)
    except AppError as exc:
        raise CliError(exc.message) from exc
    return req


async def create(settings: Settings, req: Signup, admin: bool) -> str:
    """Create the account; the line to print."""
    async with accounts(settings) as acc:
        try:
            user = await acc.auth.create_user(req.email, req.password, req.name, is_admin=admin)
        except AppError as exc:
            raise CliError(f"{req.email}: {exc.message}") from exc
    role = "admin" if user.is_admin else "user"
    return f"created {role} {user.email} ({user.user_id}) in {acc.where}"


async def set_admin(settings: Settings, email: str, admin: bool) -> str:
    """Grant or revoke admin rights; the line to print."""
    async with accounts(settings) as acc:
        user = await acc.users.by_email(email)
        if user is None:
            raise CliError(f"no account with the email {email}; `parlour users list` shows them")
        await acc.users.set_admin(user.user_id, admin)
    state = "now an admin" if admin else "no longer an admin"
    return (
        f"{user.email} is {state} (from their next log-in or token refresh, "
        f"within {settings.auth.access_ttl_seconds // 60} minutes)"
    )


async def delete(settings: Settings, email: str) -> str:
    """Delete an account: its tokens are refused from now on; the line to print."""
    async with accounts(settings) as acc:
        user = await acc.users.by_email(email)
        if user is None:
            raise CliError(f"no account with the email {email}; `parlour users list` shows them")
        try:
            await acc.auth.delete_account(user.user_id)
        except RedisError as exc:
            raise CliError(
                f"deleted {user.email}, but the running nodes could not be told through "
                f"Redis ({exc}): its tokens are refused within 30 seconds"
            ) from exc
    return (
        f"deleted {user.email} ({user.user_id}); its sessions ended. Its messages stay in "
        "the rooms it was in"
    )


async def list_accounts(settings: Settings) -> list[str]:
    """One line per account, with a header."""
    async with accounts(settings) as acc:
        users = await acc.users.list_users(LIST_LIMIT)
    width = max([len(u.email) for u in users] + [5])
    lines = [f"{'email':<{width}}  admin  created               name"]
    lines += [
        f"{u.email:<{width}}  {'yes' if u.is_admin else 'no':<5}  "
        f"{u.created_at:%Y-%m-%d %H:%M} UTC  {u.name}"
        for u in users
    ]
    lines.append(f"{len(users)} account(s)")
    return lines
