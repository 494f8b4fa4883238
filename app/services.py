"""The container of everything a transport may call, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from app.api_keys import ApiKeyService
from app.assistant.ask import AskService
from app.assistant.engine import AssistantEngine
from app.auth import Authenticator, AuthService
from app.config import Settings
from app.files import FileService
from app.gateway import GatewayService
from app.health import HealthService
from app.llm.registry import ProviderRegistry
from app.login_tokens import LoginTokens
from app.metrics import Metrics
from app.oidc import OIDCService
from app.prompt_compiler import PromptCompiler
from app.rooms import RoomService
from app.speech.service import SpeechService
from app.stateless import StatelessAsk
from app.tokens import TokenIssuer
from app.tools.registry import ToolRegistry
from app.usage import UsageService
from storage.mongo import Mongo


@dataclass
class Services:
    settings: Settings
    node_id: str
    metrics: Metrics
    mongo: Mongo
    issuer: TokenIssuer
    authenticator: Authenticator
    auth: AuthService
    rooms: RoomService
    health: HealthService
    engine: AssistantEngine
    registry: ProviderRegistry
    ask: AskService
    usage: UsageService
    stateless: StatelessAsk
    files: FileService | None = None
    oidc: OIDCService | None = None
    tools: ToolRegistry | None = None
    login_tokens: LoginTokens | None = None
    speech: SpeechService | None = None
    prompt_compiler: PromptCompiler | None = None
    gateway: GatewayService | None = None
    api_keys: ApiKeyService | None = None
