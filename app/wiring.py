"""The service graph: every store and service a node runs, built from the open resources.

services_ctx is the last of create_app's cleanup contexts (app/main.py): it reads the
resources the others opened (MongoDB, Redis, the LLM registry, RAG, tools), builds the
services, registers the Socket.IO namespaces, and closes them in order on exit.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable
from functools import partial

from aiohttp import web
from redis.asyncio import Redis

from app import __version__
from app.api_keys import ApiKeyService
from app.assistant.accounting import Accounting
from app.assistant.admission import AdmissionGate
from app.assistant.ask import AskService
from app.assistant.completion import CompletionService
from app.assistant.engine import AssistantEngine
from app.assistant.listeners import ReplyListeners
from app.auth import Authenticator, AuthService
from app.config import ConfigError
from app.events import Emitter
from app.files import FileService, RoomFiles
from app.gateway import GatewayService, embedding_model_id
from app.health import CheckFailed, HealthService
from app.ids import new_id
from app.keys import (
    BLOBS,
    EMBEDDER,
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
from app.llm.local_server import LocalLlamaServer
from app.llm.registry import ProviderRegistry
from app.login_tokens import LoginTokens
from app.media.attachments import AttachmentReader, ChatAttachments
from app.media.sandbox import MediaSandbox
from app.metrics import Metrics
from app.oidc import OIDCService
from app.prompt_compiler import PromptCompiler
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
from app.tools.documents import DocumentTools
from app.tools.registry import ToolRegistry
from app.tools.source import ToolLoopSource
from app.usage import UsageService
from app.voice.backends import build_backend
from app.voice.service import VOICE_ROOM, VoiceService
from app.voice.source import VoiceReplySource
from app.voice.speech_adapter import SpeechAdapter
from app.voice.speech_port import SpeechPort
from app.voice.spoken import TypedReplyVoice
from namespaces.base import BaseNamespace
from namespaces.connections import ConnectionRegistry
from namespaces.realtime import RealtimeNamespace
from namespaces.server import (
    DEFAULT,
    REALTIME,
    SocketTransport,
    close_client_manager,
)
from storage.api_keys import ApiKeyStore
from storage.control import ControlBus, LocalControlBus, RedisControlBus
from storage.files import FileStore
from storage.invites import MongoInviteBook
from storage.login_tokens import LoginTokenStore
from storage.messages import MessageStore
from storage.mongo import Mongo
from storage.presence import MemoryPresence, PresenceStore, RedisPresence
from storage.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from storage.rooms import RoomStore
from storage.streams import MemoryStreamLog, RedisStreamLog, StreamLog
from storage.usage import UsageStore
from storage.users import IdentityStore, RefreshTokenStore, UserStore
from storage.voice_floor import FloorStore, MemoryFloor, RedisFloor, floor_state

log = logging.getLogger(__name__)


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
