"""The application factory: one aiohttp app with the Socket.IO server attached.

The resources (MongoDB, Redis, the LLM registry, RAG, tools) open here; the services
built on them are app/wiring.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiohttp import web, web_response
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from app.assistant.source import ReplySource
from app.config import ConfigError, Settings
from app.keys import (
    BLOBS,
    EMBEDDER,
    EXTRA_PROVIDERS,
    LOCAL_LLM,
    MONGO,
    REDIS,
    REGISTRY,
    REPLY_SOURCE,
    SETTINGS,
    SIO,
    SPEECH,
    TOOL_SOURCES,
    VECTORS,
)
from app.limits import transport_cap_bytes
from app.llm.base import Provider
from app.llm.local_server import LocalLlamaServer, LocalServerError, locate
from app.llm.registry import build_registry
from app.llm.tokens import load_encoder
from app.logs import quiet_malformed_packets
from app.rag.embeddings import build_embedder
from app.startup_checks import StartupError
from app.tools.base import ToolSource
from app.tools.google_calendar import CalendarTools
from app.tools.mcp_servers import MCPServers
from app.tools.notion import NotionTools
from app.voice.speech_port import SpeechPort
from app.wiring import services_ctx
from handlers import security
from handlers.common import auth_middleware, cors_middleware, error_middleware
from handlers.origins import OriginPolicy, origin_middleware
from handlers.routes import setup_routes
from handlers.timeouts import body_timeout_middleware
from namespaces.server import (
    OrjsonModule,
    ParlourManager,
    ParlourPacket,
    ParlourRedisManager,
    ParlourServer,
    close_all_sockets,
)
from storage.blobs import build_blob_store
from storage.embedded_mongo import EmbeddedMongo
from storage.mongo import Mongo, MongoUnavailable
from storage.vectors import build_vector_store

log = logging.getLogger(__name__)


def _web_dir() -> Path:
    """The web client: app/web in an installed wheel, else web/ beside the package."""
    package = Path(__file__).resolve().parent
    return package / "web" if (package / "web").is_dir() else package.parent / "web"


WEB_DIR = _web_dir()


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    """The configured MongoDB, or the embedded SecantusDB when none is configured."""
    settings = app[SETTINGS]
    embedded: EmbeddedMongo | None = None
    uri = settings.mongo.uri
    if uri is None:
        embedded = EmbeddedMongo(settings.data_dir.resolve() / "mongo")
        try:
            uri = await embedded.start()
        except RuntimeError as exc:
            last = (str(exc).strip().splitlines() or [""])[-1][:200]
            raise StartupError(
                f"the embedded database in {embedded.storage_path} did not start ({last}); "
                "is another process using this data directory? "
                f"see {settings.data_dir.resolve() / 'secantusdb.log'}"
            ) from exc
    mongo = Mongo(uri, settings.mongo.database, settings.mongo.timeout_seconds)
    try:
        await mongo.connect()
    except MongoUnavailable as exc:
        await mongo.close()
        if embedded is not None:
            await embedded.stop()
        raise StartupError(f"cannot reach MongoDB at mongo.uri ({uri}): {exc}") from exc
    app[MONGO] = mongo
    try:
        yield
    finally:
        await mongo.close()
        if embedded is not None:
            await embedded.stop()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The shared Redis when configured (fan-out, presence, rate limits), else nothing."""
    settings = app[SETTINGS]
    if settings.redis.url is None:
        app[REDIS] = None
        yield
        return
    # A blocking pool waits for a free connection instead of raising when full. Retries:
    # after a Redis restart every pooled connection is stale once; a command reconnects
    # instead of failing (and fails within ~0.5 s while Redis is really down).
    pool = BlockingConnectionPool.from_url(
        settings.redis.url, max_connections=settings.redis.max_connections, timeout=10,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), 3),
    )
    redis = Redis(connection_pool=pool)
    try:
        await redis.ping()
    except Exception as exc:
        await redis.aclose(close_connection_pool=True)
        raise StartupError(
            f"cannot reach Redis at redis.url ({settings.redis.url}): {exc}"
        ) from exc
    app[REDIS] = redis
    try:
        yield
    finally:
        # A pool given to the client is not closed with it: its connections would stay
        # open (and be found unclosed when collected).
        await redis.aclose(close_connection_pool=True)


async def llm_ctx(app: web.Application) -> AsyncIterator[None]:
    """The providers: the embedded llama.cpp server when enabled and installed, plus keys."""
    settings = app[SETTINGS]
    local: LocalLlamaServer | None = None
    if settings.llm.local_enabled and "local" not in settings.llm.extra_openai_compatible:
        if LocalLlamaServer.find() is None:
            try:
                locate()
            except LocalServerError as exc:
                log.warning("no local model: %s", exc)
        else:
            data_dir = settings.data_dir.resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
            local = LocalLlamaServer(
                data_dir,
                context_window=settings.llm.local_context_window,
                start_timeout_seconds=settings.llm.local_start_timeout_seconds,
            )
            try:
                await local.start()
            except LocalServerError as exc:
                raise StartupError(f"the local llama.cpp server did not start: {exc}") from exc
    # Loading the tokenizer takes ~0.5 s of CPU: do it once, off the loop.
    await asyncio.to_thread(load_encoder)
    registry = build_registry(
        settings.llm,
        local.base_url if local is not None else None,
        app[EXTRA_PROVIDERS],
        local_api_key=local.api_key if local is not None else None,
    )
    notice = registry.demo_notice()
    if notice is not None:
        log.warning("%s", notice)
    if registry.default_model() is None:
        log.warning(
            "no LLM provider is configured: the assistant cannot answer. Run `make install` "
            "for the local model, or set OPENAI_API_KEY (or another provider key)."
        )
    app[REGISTRY] = registry
    app[LOCAL_LLM] = local
    try:
        yield
    finally:
        await registry.close()
        if local is not None:
            await local.stop()


async def rag_ctx(app: web.Application) -> AsyncIterator[None]:
    """The blob store, the embedder and the vector store (files, documents, retrieval)."""
    settings = app[SETTINGS]
    data_dir = settings.data_dir.resolve()
    async with contextlib.AsyncExitStack() as stack:
        try:
            embedder = build_embedder(settings.embeddings)
            stack.push_async_callback(embedder.close)
            blobs = await build_blob_store(settings.blobs, data_dir)
            stack.push_async_callback(blobs.close)
            vectors = build_vector_store(settings.vectors, data_dir, embedder.dimensions)
            stack.push_async_callback(vectors.close)
        except ConfigError as exc:
            raise StartupError(f"files and retrieval: {exc}") from exc
        app[BLOBS], app[VECTORS], app[EMBEDDER] = blobs, vectors, embedder
        yield


async def tools_ctx(app: web.Application) -> AsyncIterator[None]:
    """Google Calendar, Notion and the MCP servers' sessions (closed after the services)."""
    settings = app[SETTINGS].tools
    calendar = CalendarTools(settings.google_calendar, settings.timeout_seconds)
    notion = NotionTools(settings.notion, settings.timeout_seconds)
    mcp = MCPServers(settings.mcp, settings.timeout_seconds)
    try:
        try:
            await calendar.start()
        except ValueError as exc:
            raise StartupError(f"tools.google_calendar.service_account_file: {exc}") from exc
        await mcp.start()
        sources: list[ToolSource] = [calendar, notion, mcp]
        app[TOOL_SOURCES] = sources
        yield
    finally:
        await mcp.close()
        await notion.close()
        await calendar.close()


SERVER_HEADER = "Parlour"


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No versions in `Server` (aiohttp's default names Python's and its own)."""
    response.headers["Server"] = SERVER_HEADER


def _hide_server_version() -> None:
    # aiohttp has no setting for its default `Server`; the answers it writes itself before
    # any route (e.g. 400 for a malformed request) use this module attribute.
    web_response.SERVER_SOFTWARE = SERVER_HEADER  # type: ignore[attr-defined]


def create_app(
    settings: Settings,
    *,
    providers: Mapping[str, Provider] | None = None,
    reply_source: ReplySource | None = None,
    speech: SpeechPort | None = None,
) -> web.Application:
    """Build the aiohttp application; resources open in cleanup_ctx when it starts.

    `providers` adds LLM providers by name (tests inject a scripted one); `reply_source`
    replaces where replies' events come from (the plain provider call by default);
    `speech` gives voice rooms' embedded pipeline its recogniser and voice.
    """
    origins = OriginPolicy(settings.server.cors_origins)
    middlewares = [
        error_middleware, body_timeout_middleware(settings.server.body_timeout_seconds),
        origin_middleware(origins), auth_middleware,
    ]
    if settings.server.cors_origins:
        middlewares.insert(0, cors_middleware(settings.server.cors_origins))
    # One hard cap for a JSON body, a Socket.IO event and a WebSocket frame, well above
    # limits.max_message_chars: a long message is refused by validation, not dropped.
    cap = transport_cap_bytes(settings.limits)
    app = web.Application(middlewares=middlewares, client_max_size=cap)
    app[SETTINGS] = settings
    app[EXTRA_PROVIDERS] = dict(providers or {})
    app[REPLY_SOURCE] = reply_source
    app[SPEECH] = speech
    manager = (
        ParlourRedisManager(settings.redis.url, channel="parlour")
        if settings.redis.url else ParlourManager()
    )
    sio = ParlourServer(
        async_mode="aiohttp",
        json=OrjsonModule,
        serializer=ParlourPacket,
        client_manager=manager,
        # The same rule as REST: this server's own origin plus server.cors_origins (a
        # plain list would leave the server's own origin out).
        cors_allowed_origins=origins.socketio,
        cors_credentials=True,
        max_http_buffer_size=cap,
        logger=False,
        engineio_logger=False,
    )
    sio.attach(app)
    app[SIO] = sio
    quiet_malformed_packets()

    async def close_sockets(app: web.Application) -> None:
        # on_shutdown runs before aiohttp waits for open handlers: disconnecting every
        # client here (they reconnect elsewhere) lets the websocket handlers end instead
        # of running out the shutdown timeout.
        await close_all_sockets(sio)
        await sio.shutdown()

    app.on_shutdown.append(close_sockets)
    app.on_response_prepare.append(_server_header)
    _hide_server_version()
    app.cleanup_ctx.extend([mongo_ctx, redis_ctx, llm_ctx, rag_ctx, tools_ctx, services_ctx])
    setup_routes(app, WEB_DIR)
    security.setup(app)
    if settings.server.base_path:
        mount_under(app, settings.server.base_path)
    return app


def mount_under(app: web.Application, base_path: str) -> None:
    """Move every route (REST, Socket.IO, the web client) under `base_path`.

    For a proxy that forwards https://example.com/parlour/... as is. `/parlour`
    redirects to `/parlour/`, where the web client's relative URLs resolve.
    """
    router = app.router
    for resource in list(router.resources()):
        router.unindex_resource(resource)
        resource.add_prefix(base_path)
        router.index_resource(resource)

    async def to_slash(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(base_path + "/")

    router.add_get(base_path, to_slash)
