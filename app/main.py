"""The application factory: one aiohttp app with the Socket.IO server attached."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Mapping
from functools import partial
from pathlib import Path

from aiohttp import web, web_response
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from app import __version__
from app.api_keys import ApiKeyService
from app.assistant.accounting import Accounting
from app.assistant.admission import AdmissionGate
from app.assistant.ask import AskService
from app.assistant.completion import CompletionService
from app.assistant.engine import AssistantEngine
from app.assistant.listeners import ReplyListeners
from app.assistant.source import ReplySource
from app.auth import Authenticator, AuthService
from app.config import ConfigError, Settings
from app.events import Emitter
from app.files import FileService, RoomFiles
from app.gateway import GatewayService, embedding_model_id
from app.health import CheckFailed, HealthService
from app.ids import new_id
from app.keys import (
    BLOBS,
    EMBEDDER,
    EXTRA_PROVIDERS,
    LOCAL_LLM,
    MONGO,
    REDIS,
    REGISTRY,
    REPLY_SOURCE,
    SERVICES,
    SETTINGS,
    SIO,
    SPEECH,
    TOOL_SOURCES,
    VECTORS,
)
from app.limits import transport_cap_bytes
from app.llm.base import Provider
from app.llm.local_server import LocalLlamaServer, LocalServerError, locate
from app.llm.registry import ProviderRegistry, build_registry
from app.llm.tokens import load_encoder
from app.login_tokens import LoginTokens
from app.logs import quiet_malformed_packets
from app.media.attachments import AttachmentReader, ChatAttachments
from app.media.sandbox import MediaSandbox
from app.metrics import Metrics
from app.oidc import OIDCService
from app.prompt_compiler import PromptCompiler
from app.rag.embeddings import build_embedder
from app.rag.ingest import Ingestor
from app.rag.retrieval import RagRetriever, RecallIndexer
from app.rooms import RoomService
from app.services import Services
from app.speech.factory import build_speech
from app.speech.service import SpeechService
from app.startup_checks import StartupError
from app.stateless import StatelessAsk
from app.token_versions import TokenVersions
from app.tokens import TokenIssuer, load_or_create_secret
from app.tools.base import ToolSource
from app.tools.documents import DocumentTools
from app.tools.google_calendar import CalendarTools
from app.tools.mcp_servers import MCPServers
from app.tools.notion import NotionTools
from app.tools.registry import ToolRegistry
from app.tools.source import ToolLoopSource
from app.usage import UsageService
from app.voice.backends import build_backend
from app.voice.service import VOICE_ROOM, VoiceService
from app.voice.source import VoiceReplySource
from app.voice.speech_adapter import SpeechAdapter
from app.voice.speech_port import SpeechPort
from app.voice.spoken import TypedReplyVoice
from handlers import security
from handlers.common import auth_middleware, cors_middleware, error_middleware
from handlers.origins import OriginPolicy, origin_middleware
from handlers.routes import setup_routes
from handlers.timeouts import body_timeout_middleware
from namespaces.base import BaseNamespace
from namespaces.connections import ConnectionRegistry
from namespaces.realtime import RealtimeNamespace
from namespaces.server import (
    DEFAULT,
    REALTIME,
    OrjsonModule,
    ParlourManager,
    ParlourPacket,
    ParlourRedisManager,
    ParlourServer,
    SocketTransport,
    close_all_sockets,
    close_client_manager,
)
from storage.api_keys import ApiKeyStore
from storage.blobs import build_blob_store
from storage.control import ControlBus, LocalControlBus, RedisControlBus
from storage.embedded_mongo import EmbeddedMongo
from storage.files import FileStore
from storage.invites import MongoInviteBook
from storage.login_tokens import LoginTokenStore
from storage.messages import MessageStore
from storage.mongo import Mongo, MongoUnavailable
from storage.presence import MemoryPresence, PresenceStore, RedisPresence
from storage.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from storage.rooms import RoomStore
from storage.streams import MemoryStreamLog, RedisStreamLog, StreamLog
from storage.usage import UsageStore
from storage.users import IdentityStore, RefreshTokenStore, UserStore
from storage.vectors import build_vector_store
from storage.voice_floor import FloorStore, MemoryFloor, RedisFloor, floor_state

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


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the services, register the namespaces; shut Socket.IO down first on exit."""
    settings = app[SETTINGS]
    sio = app[SIO]
    mongo = app[MONGO]
    redis = app[REDIS]
    node_id = settings.server.node_id or f"{socket.gethostname()}-{os.getpid()}-{new_id()[:6]}"
    metrics = Metrics()

    try:
        secret = settings.jwt_secret_value()
    except ConfigError as exc:
        raise StartupError(str(exc)) from exc
    if secret is None:
        if settings.server.production:
            raise StartupError(
                "auth.jwt_secret is required in production: set PARLOUR_AUTH__JWT_SECRET"
            )
        secret = load_or_create_secret(settings.data_dir.resolve())
    auth_settings = settings.auth
    try:
        issuer = TokenIssuer(
            secret, auth_settings.access_ttl_seconds, auth_settings.refresh_ttl_seconds,
            auth_settings.max_token_lifetime_seconds,
        )
    except ValueError as exc:
        raise StartupError(f"the JWT secret: {exc}") from exc

    limiter: RateLimiter = RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()
    # The daily token budgets in a store of their own: no flood of short-lived keys
    # (log-in guesses, connects from many addresses) can push them out.
    budgets: RateLimiter = limiter if redis is not None else MemoryRateLimiter()
    presence: PresenceStore = (
        RedisPresence(redis, node_id) if redis is not None else MemoryPresence()
    )
    streams: StreamLog = RedisStreamLog(redis) if redis is not None else MemoryStreamLog()
    control: ControlBus = RedisControlBus(redis) if redis is not None else LocalControlBus()
    emitter = Emitter(SocketTransport(sio, control))
    users = UserStore(mongo)
    versions = TokenVersions(users, control)
    ledger = UsageStore(mongo)
    connections = ConnectionRegistry(
        sio, emitter, settings.server.max_socket_queue, versions, settings.limits, limiter
    )
    # Personal API keys authenticate through the same Authenticator as access tokens;
    # sockets opened with a key end when it is revoked.
    api_keys = ApiKeyService(
        ApiKeyStore(mongo), users, ledger, control, auth_settings,
        on_revoked=[connections.expire_key],
    )
    authenticator = Authenticator(auth_settings, issuer, versions, api_keys=api_keys)
    room_store, message_store = RoomStore(mongo), MessageStore(mongo)
    room_store.attach(control)
    registry = app[REGISTRY]

    # Files and retrieval, which the assistant and the rooms use.
    blobs, vectors, embedder = app[BLOBS], app[VECTORS], app[EMBEDDER]
    file_store = FileStore(mongo)
    recall = RecallIndexer(mongo, message_store, vectors, embedder)
    ingestor = Ingestor(
        settings.embeddings, settings.ingest, settings.limits, file_store, blobs, vectors,
        embedder, emitter, metrics, node_id, single_node=redis is None,
    )
    room_files = RoomFiles(file_store, blobs, vectors, ingestor.cancel)
    try:
        speech = build_speech(settings.audio, settings.llm)
    except ValueError as exc:
        raise StartupError(str(exc)) from exc
    # Images and videos from users are decoded in capped worker processes.
    media = MediaSandbox(settings.ingest)
    reader = AttachmentReader(registry, speech.stt, media, media)

    # The assistant: one admission gate for every path, replies as tasks of their own.
    gate = AdmissionGate(settings.limits, settings.assistant, budgets, metrics)
    accounting = Accounting(registry, metrics, budgets, ledger)
    retriever = RagRetriever(settings.vectors, file_store, vectors, embedder, recall)
    # Tools: search_documents over the same retriever, plus calendar, Notion and MCP.
    tools = ToolRegistry(settings.tools, [
        DocumentTools(retriever, settings.vectors.top_k), *app[TOOL_SOURCES],
    ])
    # Voice turns' replies get their answers (spoken, or from the Realtime bridge) here.
    # Voice rooms hear and speak through the same recogniser and voice as /run/audio.
    voice_speech: SpeechPort = app[SPEECH] or SpeechAdapter(speech.stt, speech.tts)
    answers = VoiceReplySource(
        app[REPLY_SOURCE] or ToolLoopSource(tools),
        TypedReplyVoice(voice_speech, emitter, VOICE_ROOM) if settings.voice.speak_typed_replies
        else None,
    )
    engine = AssistantEngine(
        settings.assistant, settings.llm, registry, room_store, message_store, emitter,
        streams, control, node_id, gate, accounting, retriever, answers, ReplyListeners(),
        ChatAttachments(room_files, reader),
    )
    floor: FloorStore = RedisFloor(redis) if redis is not None else MemoryFloor()
    rooms = RoomService(
        settings.limits, room_store, message_store, users, presence, limiter,
        emitter, MongoInviteBook(mongo), engine, room_files.files_of_chat,
        on_delete=[room_files.on_room_deleted, recall.forget], tools=tools,
        voice_state=partial(floor_state, floor),
    )
    voice = VoiceService(
        settings.voice, rooms, engine, floor, emitter, answers,
        build_backend(settings, voice_speech, emitter, partial(message_store.page, limit=20)),
        control, node_id,
    )
    completions = CompletionService(settings.assistant, registry, gate, accounting)
    speaking = SpeechService(settings.audio, speech, gate, metrics)
    engine.start()
    auth = AuthService(
        settings.auth, users, RefreshTokenStore(mongo), issuer, limiter, versions,
        on_signup=[rooms.accept_invites],
    )
    try:
        oidc = OIDCService(
            settings.oidc, auth, users, IdentityStore(mongo), secret,
            link_requires_password=settings.auth.sso_link_requires_password,
        )
    except ValueError as exc:
        raise StartupError(f"single sign-on: {exc}") from exc
    health = HealthService(__version__, node_id)
    health.register("mongo", lambda: _ping_mongo(mongo))
    health.register("llm", lambda: _check_llm(app[REGISTRY], app[LOCAL_LLM]))
    if redis is not None:
        health.register("redis", lambda: _ping_redis(redis))
    files = FileService(
        settings.limits, file_store, blobs, vectors, rooms, metrics, ingestor.wake,
        ingestor.cancel,
    )
    health.register("blobs", lambda: _ping(blobs.ping()))
    health.register("vectors", lambda: _ping(vectors.ping()))
    await ingestor.start()
    recall.start()

    sio.register_namespace(
        RealtimeNamespace(REALTIME, authenticator, connections, emitter, metrics, rooms, voice)
    )
    sio.register_namespace(
        BaseNamespace(DEFAULT, authenticator, connections, emitter, metrics)
    )

    stateless = StatelessAsk(
        settings.limits, settings.assistant.name, completions, retriever, reader
    )
    gateway = GatewayService(
        settings.limits, registry, stateless, gate, accounting, limiter, embedder,
        embedding_model_id(settings.embeddings),
    )
    app[SERVICES] = Services(
        settings=settings, node_id=node_id, metrics=metrics, mongo=mongo, issuer=issuer,
        authenticator=authenticator, auth=auth, rooms=rooms, health=health, engine=engine,
        registry=registry,
        ask=AskService(settings.assistant, rooms, engine),
        usage=UsageService(mongo, rooms, ledger), files=files, oidc=oidc, tools=tools,
        speech=speaking, prompt_compiler=PromptCompiler(
            settings.limits, completions, settings.assistant.max_output_tokens),
        stateless=stateless, gateway=gateway, api_keys=api_keys,
        login_tokens=LoginTokens(
            LoginTokenStore(mongo), auth, users, settings.auth.login_token_ttl_seconds
        ),
    )
    await control.start()
    await presence.start()
    connections.start()
    api_keys.start()
    log.info("parlour %s ready (node %s)", __version__, node_id)
    try:
        yield
    finally:
        await connections.stop()
        await api_keys.close()
        await voice.close()
        await engine.close()
        await message_store.close()
        await recall.close()
        await ingestor.close()
        await control.close()
        await close_client_manager(sio)
        await presence.close()
        await oidc.close()
        await speech.close()
        await media.close()


async def _ping_mongo(mongo: Mongo) -> str:
    return f"ping {await mongo.ping():.1f} ms"


async def _ping(check: Awaitable[None]) -> str:
    await check
    return "ok"


async def _check_llm(registry: ProviderRegistry, local: LocalLlamaServer | None) -> str:
    """The default model's provider: the local server answers, or a key is configured."""
    model = registry.default_model()
    if model is None:
        raise CheckFailed("no LLM provider is configured")
    if model.startswith("local:") and local is not None:
        return f"{model}: {await local.check()}"
    # Remote providers are not called (that would cost money): configured is enough.
    return f"{model}: configured"


async def _ping_redis(redis: Redis) -> str:
    await redis.ping()
    return "pong"


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
