"""Typed application keys (the only place app state is named)."""

from __future__ import annotations

from pathlib import Path

import socketio
from aiohttp import web
from redis.asyncio import Redis

from app.assistant.source import ReplySource
from app.config import Settings
from app.llm.base import Provider
from app.llm.local_server import LocalLlamaServer
from app.llm.registry import ProviderRegistry
from app.rag.embeddings import Embedder
from app.services import Services
from app.tools.base import ToolSource
from app.voice.speech_port import SpeechPort
from storage.blobs import BlobStore
from storage.mongo import Mongo
from storage.vectors import VectorStore

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
MONGO: web.AppKey[Mongo] = web.AppKey("mongo", Mongo)
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
SIO: web.AppKey[socketio.AsyncServer] = web.AppKey("sio")
REGISTRY: web.AppKey[ProviderRegistry] = web.AppKey("registry", ProviderRegistry)
EXTRA_PROVIDERS: web.AppKey[dict[str, Provider]] = web.AppKey("extra_providers")
LOCAL_LLM: web.AppKey[LocalLlamaServer | None] = web.AppKey("local_llm")
# Where replies' events come from when not the plain provider call (tests inject one).
REPLY_SOURCE: web.AppKey[ReplySource | None] = web.AppKey("reply_source")
# Retrieval backends, opened in rag_ctx.
BLOBS: web.AppKey[BlobStore] = web.AppKey("blobs")
VECTORS: web.AppKey[VectorStore] = web.AppKey("vectors")
EMBEDDER: web.AppKey[Embedder] = web.AppKey("embedder")
# Calendar, Notion and MCP tools, opened in tools_ctx (search_documents joins in services).
TOOL_SOURCES: web.AppKey[list[ToolSource]] = web.AppKey("tool_sources")
# The web client's directory (static files, the single sign-on landing page).
WEB_ROOT: web.AppKey[Path] = web.AppKey("web_root", Path)
# Speech recognition and synthesis for voice rooms' embedded pipeline (tests inject one).
SPEECH: web.AppKey[SpeechPort | None] = web.AppKey("speech")
