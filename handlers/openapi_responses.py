"""Response bodies of the REST routes, as pydantic models for the OpenAPI description only.

The handlers build these bodies from the services' records; these models say what a
client receives (tests/test_first_contact_http.py checks real answers against them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from app.models import Message, Room, Source, Usage, User


class Session(BaseModel):
    user: User
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"]


class Me(BaseModel):
    user: User


class TokenCheck(BaseModel):
    valid: bool
    user: User


class Providers(BaseModel):
    providers: list[str]


class PendingLink(BaseModel):
    email: str
    provider: str


class Chat(Room):
    chat_id: str


class ChatPage(BaseModel):
    chats: list[Chat]
    next_cursor: str | None


class Messages(BaseModel):
    messages: list[Message]


class Document(BaseModel):
    document_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    status: Literal["processing", "ready", "failed", "stored"]
    progress: float
    chunks: int
    created_at: str
    error: str | None = None
    # With `error`: payload_too_large, invalid_payload or internal.
    error_code: str | None = None


class ChatFile(Document):
    file_id: str
    chat_id: str | None
    uploaded_by: str


class Files(BaseModel):
    files: list[ChatFile]


class Documents(BaseModel):
    documents: list[Document]


class Model(BaseModel):
    id: str
    provider: str
    name: str
    context_window: int
    input_per_mtok: float
    output_per_mtok: float
    cached_per_mtok: float
    available: bool
    demo: bool
    notice: str | None


class ModelPage(BaseModel):
    models: list[Model]
    page: int
    page_size: int
    total: int


class UsageTotals(BaseModel):
    replies: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float


class ModelUsage(UsageTotals):
    model: str | None


class ChatUsage(BaseModel):
    chat_id: str
    models: list[ModelUsage]
    total: UsageTotals


class MessageUsage(BaseModel):
    message_id: str
    room_id: str
    model: str | None
    usage: Usage | None


class Stats(BaseModel):
    mean: float | None
    p50: float | None
    p95: float | None


class UserMetrics(BaseModel):
    scope: Literal["user", "all"]
    chat_id: str | None
    questions: int
    answers: int
    answers_by_status: dict[str, int]
    latency_ms: Stats
    time_to_first_token_ms: Stats
    tokens: dict[str, int]
    cost_usd: float
    # With ?days=N: answers, tokens and cost per UTC day, oldest first.
    daily: list[dict[str, Any]] | None = None


class RunAnswer(BaseModel):
    answer: str
    usage: Usage
    sources: list[Source]
    model: str
    message_id: str | None = None


class CompletionMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class CompletionChoice(BaseModel):
    index: int
    finish_reason: str
    message: CompletionMessage


class Completion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: dict[str, Any]


class ToolInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    source: str
    configured: bool


class Tools(BaseModel):
    tools: list[ToolInfo]


class SessionId(BaseModel):
    session_id: str


class Check(BaseModel):
    ok: bool
    latency_ms: float
    detail: str


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, Check]
    version: str
    node_id: str


class Transcription(BaseModel):
    text: str


class CompiledPrompt(BaseModel):
    compiled_prompt: str
    parameters: list[dict[str, Any]]


class CompiledForm(CompiledPrompt):
    form: dict[str, Any]


class ParameterValues(BaseModel):
    values: dict[str, Any]
