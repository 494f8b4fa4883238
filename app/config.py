"""Configuration: config.toml defaults, overridden by PARLOUR_SECTION__KEY environment."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.config_features import AudioSettings, Section, ToolsSettings, VoiceSettings

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.toml"
GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"


class ConfigError(Exception):
    """The configuration is invalid; the message names the bad key."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SECRET_BYTES = 32


def check_secret_length(secret: str) -> None:
    """ValueError for a JWT secret too short for HS256 (RFC 7518 §3.2)."""
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise ValueError(
            f"must be at least {MIN_SECRET_BYTES} bytes for HS256, got {size} "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    production: bool = False
    cors_origins: list[str] = []
    node_id: str = ""
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: str = "INFO"
    max_socket_queue: int = Field(256, ge=8)
    shutdown_timeout_seconds: float = Field(5.0, ge=0)
    # Mount the REST API, Socket.IO and the web client under this path ("" = at /).
    base_path: str = ""

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, path: str) -> str:
        if path in ("", "/"):
            return ""
        path = path.rstrip("/")
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path):
            raise ValueError("must be a path like /parlour (letters, digits, . _ ~ -)")
        return path

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, level: str) -> str:
        if level.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level.upper()

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.fullmatch(r"https?://[^/\s*]+", origin):
                raise ValueError(
                    f"{origin!r} is not an origin like https://chat.example.com "
                    "(no path, no wildcard: credentials are allowed)"
                )
        return origins
    # A request head must be complete this long after the connection opened or the
    # previous response (slow clients: slowloris); also the idle keep-alive time.
    header_timeout_seconds: float = Field(15.0, gt=0)
    # A handler waiting for request-body bytes that do not come this long answers 408.
    body_timeout_seconds: float = Field(30.0, gt=0)
    # Unset: /internal/* open (bind or proxy it privately). Set: /internal/metrics and the
    # detail of /internal/health need `Authorization: Bearer <token>`.
    internal_token: SecretStr | None = None


class MongoSettings(Section):
    uri: str | None = None
    database: str = "parlour"
    timeout_seconds: float = Field(10.0, gt=0)


class RedisSettings(Section):
    url: str | None = None
    max_connections: int = Field(50, ge=2)


class AuthSettings(Section):
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path | None = None
    access_ttl_seconds: int = Field(900, ge=1)
    refresh_ttl_seconds: int = Field(14 * 24 * 3600, ge=60)
    # The longest a session lasts from its log-in, refreshes included (0: no cap).
    max_token_lifetime_seconds: int = Field(30 * 24 * 3600, ge=0)
    # A first single sign-on whose (verified) email has a password account links to it
    # only once that account's password confirms it.
    sso_link_requires_password: bool = True
    cookie_secure: bool = False
    allowed_emails: list[str] = []
    allowed_domains: list[str] = []
    login_max_failures: int = Field(5, ge=1)
    login_window_seconds: int = Field(300, ge=1)
    min_password_chars: int = Field(8, ge=1)
    # The one-time token single sign-on hands the browser (GET /validate-token?token=).
    login_token_ttl_seconds: int = Field(60, ge=1, le=600)

    @field_validator("jwt_secret")
    @classmethod
    def _secret_length(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            check_secret_length(secret.get_secret_value())
        return secret

    @field_validator("allowed_emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
                raise ValueError(f"{email!r} is not an email address")
        return emails

    @model_validator(mode="after")
    def _ttls(self) -> AuthSettings:
        if self.refresh_ttl_seconds <= self.access_ttl_seconds:
            raise ValueError(
                "refresh_ttl_seconds must be longer than access_ttl_seconds "
                f"({self.refresh_ttl_seconds} <= {self.access_ttl_seconds})"
            )
        return self


BLOCKED_UPLOAD_TYPES = (
    ".exe", ".dll", ".msi", ".msp", ".scr", ".com", ".bat", ".cmd", ".pif", ".cpl", ".vbs",
    ".vbe", ".wsf", ".ps1", ".psm1", ".jar", ".apk", ".appx", ".dmg", ".pkg", ".deb", ".rpm",
    ".so", ".dylib", ".elf", ".bin", ".run", ".app", ".lnk", ".reg", ".hta",
    "application/x-msdownload", "application/x-dosexec", "application/x-executable",
    "application/x-mach-binary", "application/x-sharedlib",
)


class LimitsSettings(Section):
    max_message_chars: int = Field(16_000, ge=1)
    max_title_chars: int = Field(200, ge=1)
    max_system_prompt_chars: int = Field(16_000, ge=1)
    max_upload_mb: float = Field(50, gt=0)
    messages_per_minute: int = Field(120, ge=1)
    max_concurrent_replies: int = Field(2, ge=1)
    max_tokens_per_day: int = Field(0, ge=0)
    max_members: int = Field(100, ge=1)
    invites_per_hour: int = Field(100, ge=1)
    replay_max_messages: int = Field(1000, ge=1)
    max_files_per_upload: int = Field(20, ge=1)
    max_index_mb: float = Field(20, gt=0)
    max_chunks_per_document: int = Field(5000, ge=1)
    max_sockets_per_user: int = Field(20, ge=1)
    connects_per_minute: int = Field(600, ge=0)
    max_rooms_per_socket: int = Field(200, ge=1)
    # Chat uploads refused by extension (".exe") or by content type sniffed from the bytes.
    blocked_upload_types: list[str] = Field(default_factory=lambda: list(BLOCKED_UPLOAD_TYPES))
    max_multipart_parts: int = Field(100, ge=1)
    max_multipart_field_kb: float = Field(256, gt=0)

    @model_validator(mode="after")
    def _parts_hold_the_files(self) -> LimitsSettings:
        if self.max_multipart_parts < self.max_files_per_upload:
            raise ValueError(
                "max_multipart_parts must be at least max_files_per_upload "
                f"({self.max_files_per_upload})"
            )
        return self


class BlobSettings(Section):
    backend: Literal["local", "s3"] = "local"
    s3_bucket: str = "parlour"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_path_style: bool = False
    s3_prefix: str = ""
    s3_create_bucket: bool = False
    multipart_chunk_mb: int = Field(8, ge=5)


class VectorSettings(Section):
    backend: Literal["sqlite", "pinecone"] = "sqlite"
    pinecone_host: str | None = None
    pinecone_index: str = "parlour"
    top_k: int = Field(5, ge=1, le=50)
    min_score: float = Field(0.4, ge=-1, le=1)
    recall_top_k: int = Field(3, ge=0, le=20)
    recall_skip_recent: int = Field(20, ge=0)


class EmbeddingSettings(Section):
    backend: Literal["local", "openai"] = "local"
    model: str = "text-embedding-3-small"
    base_url: str | None = None
    batch_size: int = Field(32, ge=1)
    dimensions: int = Field(384, ge=1)
    chunk_tokens: int = Field(200, ge=16)
    chunk_overlap: int = Field(30, ge=0)
    ingest_workers: int = Field(2, ge=1, le=16)
    ingest_lease_seconds: float = Field(60.0, ge=5)


class IngestSettings(Section):
    """The extraction sandbox: what reading one uploaded file may cost."""

    extract_timeout_seconds: float = Field(60.0, gt=0)
    extract_memory_mb: int = Field(1024, ge=256)
    max_extracted_chars: int = Field(5_000_000, ge=1000)
    max_zip_entries: int = Field(2000, ge=1)
    max_zip_uncompressed_mb: float = Field(200, gt=0)
    max_zip_ratio: float = Field(100, gt=1)


class LLMSettings(Section):
    default_model: str | None = None
    local_enabled: bool = True
    local_start_timeout_seconds: float = Field(120.0, gt=0)
    local_context_window: int = Field(8192, ge=512)
    openai_base_url: str | None = None
    # The OpenAI Realtime model voice rooms talk to when OPENAI_API_KEY is set.
    openai_realtime_model: str = "gpt-realtime"
    extra_openai_compatible: dict[str, str] = {}
    request_timeout_seconds: float = Field(120.0, gt=0)


class AssistantSettings(Section):
    delta_interval_ms: int = Field(25, ge=0)
    checkpoint_seconds: float = Field(3.0, gt=0)
    max_output_tokens: int = Field(1024, ge=1)
    max_queued_replies_per_room: int = Field(4, ge=0)
    reply_start_timeout_seconds: float = Field(60.0, gt=0)
    name: str = "Assistant"


class OIDCProviderSettings(Section):
    """One OpenID Connect provider; the table name is the `{provider}` of the routes."""

    # Unset for `google`: Google's discovery document.
    discovery_url: str | None = None
    client_id: str = Field(min_length=1)
    # Only from the environment: PARLOUR_OIDC__<NAME>__CLIENT_SECRET (never config.toml).
    client_secret: SecretStr | None = None
    scopes: str = "openid email profile"
    # Unset: built from the request (/api/v1/auth/<name>/callback on the same host).
    redirect_uri: str | None = None

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, scopes: str) -> str:
        if "openid" not in scopes.split():
            raise ValueError("must include openid")
        return scopes


# Lower-case, no "__": the name must survive the environment's PARLOUR_OIDC__<NAME>__KEY.
OIDCProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")]


class Settings(BaseSettings):
    """Every configurable value of Parlour."""

    model_config = SettingsConfigDict(
        env_prefix="PARLOUR_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("./data")
    server: ServerSettings = ServerSettings()
    mongo: MongoSettings = MongoSettings()
    redis: RedisSettings = RedisSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    blobs: BlobSettings = BlobSettings()
    vectors: VectorSettings = VectorSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    ingest: IngestSettings = IngestSettings()
    llm: LLMSettings = LLMSettings()
    assistant: AssistantSettings = AssistantSettings()
    tools: ToolsSettings = ToolsSettings()
    voice: VoiceSettings = VoiceSettings()
    audio: AudioSettings = AudioSettings()
    oidc: dict[OIDCProviderName, OIDCProviderSettings] = {}

    @field_validator("oidc")
    @classmethod
    def _oidc_discovery_urls(
        cls, providers: dict[str, OIDCProviderSettings]
    ) -> dict[str, OIDCProviderSettings]:
        """`google` defaults to Google's discovery document; every other provider needs one."""
        resolved = {}
        for name, provider in providers.items():
            if provider.discovery_url is None:
                if name != "google":
                    raise ValueError(f"{name}.discovery_url is required")
                provider = provider.model_copy(update={"discovery_url": GOOGLE_DISCOVERY_URL})
            resolved[name] = provider
        return resolved

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (passed as init values).
        return (env_settings, init_settings)

    def jwt_secret_value(self) -> str | None:
        """The JWT secret from the environment or the configured file, if any."""
        if self.auth.jwt_secret is not None:
            return self.auth.jwt_secret.get_secret_value()
        path = self.auth.jwt_secret_file
        if path is not None:
            try:
                secret = path.read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise ConfigError(f"auth.jwt_secret_file: cannot read {path}: {reason}") from exc
            try:
                check_secret_length(secret)
            except ValueError as exc:
                raise ConfigError(f"auth.jwt_secret_file: the secret in {path} {exc}") from exc
            return secret
        return None


def _describe(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"])
        # Name the environment variable when the bad value came from there.
        var = "PARLOUR_" + key.replace(".", "__").upper()
        source = f" (set by {var})" if var in os.environ else ""
        lines.append(f"{key}: {item['msg']}{source}")
    return "; ".join(lines)


def _refuse_file_secrets(values: dict[str, Any], file_path: Path) -> None:
    """OIDC client secrets come only from the environment, never from the file."""
    for name, provider in (values.get("oidc") or {}).items():
        if isinstance(provider, dict) and "client_secret" in provider:
            raise ConfigError(
                f"oidc.{name}.client_secret: secrets never go in {file_path}; "
                f"set PARLOUR_OIDC__{str(name).upper()}__CLIENT_SECRET instead"
            )


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read config.toml (or `path`), apply the environment, validate."""
    file_path = path or DEFAULT_CONFIG_PATH
    values: dict[str, Any] = {}
    if file_path.exists():
        try:
            values = tomllib.loads(file_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path}: {exc}") from exc
        _refuse_file_secrets(values, file_path)
    elif path is not None:
        raise ConfigError(f"config file not found: {path}")
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            values.setdefault(section, {})[name] = value
        else:
            values[section] = value
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc)}") from exc
