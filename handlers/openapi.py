"""OpenAPI 3 description of the REST API (`/openapi.json`) and Swagger UI (`/docs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from app import __version__
from app.keys import SETTINGS
from app.openai_api import ChatCompletionRequest, EmbeddingRequest
from app.schemas import ChangePassword, CreateRoom, Login, RefreshRequest, RoomSettings, Signup
from handlers import openapi_responses as R
from handlers.ai import ChatCompletion, MetricsQuery, ModelPage
from handlers.api_keys import CreateKey
from handlers.chats import ListChats, ListMessages
from handlers.common import json_response
from handlers.oidc import (
    LinkConfirm,
    LoginLanding,
    OIDCCallback,
    OIDCLogin,
    ValidateToken,
)
from handlers.prompt_compiler import CompileRequest, UpdateParameters
from handlers.run_input import Run


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    auth: bool = True
    form: tuple[str, ...] = ()
    multipart: bool = False
    ok: int = 200
    response: type[BaseModel] | None = None  # the JSON body of the `ok` answer
    content_type: str | None = None  # a non-JSON `ok` answer (downloads)
    run_body: bool = False  # /run: JSON, form or multipart with the same fields
    multipart_field: str = "files"
    openai: bool = False  # /v1: OpenAI's error shape; SSE when the body asks `stream`


OPERATIONS = [
    Op("post", "/api/v1/auth/signup", "Create an account", Signup, auth=False, ok=201,
       response=R.Session),
    Op("post", "/api/v1/auth/login", "Log in", Login, auth=False, response=R.Session),
    Op("post", "/api/v1/auth/token", "OAuth2 password grant", auth=False,
       form=("username", "password"), response=R.AccessToken),
    Op("post", "/api/v1/auth/refresh", "Rotate the refresh token", RefreshRequest, auth=False,
       response=R.Session),
    Op("post", "/api/v1/auth/logout", "End every session of the account (all devices)",
       RefreshRequest, auth=False, ok=204),
    Op("post", "/api/v1/auth/password", "Change the password (ends every other session)",
       ChangePassword, response=R.Session),
    Op("get", "/api/v1/auth/link", "Single sign-on waiting for its account's password",
       auth=False, response=R.PendingLink),
    Op("post", "/api/v1/auth/link", "Confirm a single sign-on link with the password",
       LinkConfirm, auth=False, response=R.Session),
    Op("get", "/api/v1/auth/providers", "Configured single sign-on providers", auth=False,
       response=R.Providers),
    Op("get", "/api/v1/auth/me", "The current user", response=R.Me),
    Op("get", "/api/v1/auth/validate-token", "Check an access token: {valid, user}; with "
       "?token=, trade a one-time single sign-on token for the session cookies (once)",
       query=ValidateToken, response=R.TokenCheck),
    Op("get", "/api/v1/auth/{provider}/login", "Single sign-on: redirect to the provider",
       query=OIDCLogin, auth=False, ok=302),
    Op("get", "/api/v1/auth/{provider}/callback", "Single sign-on: finish, set the cookies",
       query=OIDCCallback, auth=False, ok=302),
    Op("get", "/api/v1/chat", "The user's chats", query=ListChats, response=R.ChatPage),
    Op("post", "/api/v1/chat", "Create a chat", CreateRoom, ok=201, response=R.Chat),
    Op("get", "/api/v1/chat/public", "Public chats anyone may join", query=ListChats,
       response=R.ChatPage),
    Op("get", "/api/v1/chat/{chat_id}", "One chat", response=R.Chat),
    Op("patch", "/api/v1/chat/{chat_id}", "Change a chat (owner)", RoomSettings,
       response=R.Chat),
    Op("delete", "/api/v1/chat/{chat_id}", "Delete a chat and its data (owner)", ok=204),
    Op("get", "/api/v1/chat/{chat_id}/messages", "A page of messages", query=ListMessages,
       response=R.Messages),
    Op("get", "/api/v1/chat/{chat_id}/usage", "Token and cost totals per model",
       response=R.ChatUsage),
    Op("post", "/api/v1/chat/{chat_id}/upload", "Upload files to a chat", multipart=True,
       ok=201, response=R.Files),
    Op("get", "/api/v1/chat/{chat_id}/files", "A chat's files", response=R.Files),
    Op("get", "/api/v1/chat/{chat_id}/files/{file_id}", "Download a file",
       content_type="application/octet-stream"),
    Op("delete", "/api/v1/chat/{chat_id}/files/{file_id}", "Delete a file (idempotent)",
       ok=204),
    Op("post", "/api/v1/documents", "Upload knowledge-base documents", multipart=True, ok=202,
       response=R.Documents),
    Op("get", "/api/v1/documents", "The user's documents", response=R.Documents),
    Op("get", "/api/v1/documents/{document_id}", "One document", response=R.Document),
    Op("get", "/api/v1/documents/{document_id}/content", "Download a document",
       content_type="application/octet-stream"),
    Op("delete", "/api/v1/documents/{document_id}", "Delete a document (idempotent)", ok=204),
    Op("get", "/api/v1/messages/{message_id}/usage", "Usage of one message",
       response=R.MessageUsage),
    Op("get", "/api/v1/model", "The model catalog (available models first)", query=ModelPage,
       response=R.ModelPage),
    Op("post", "/api/v1/aisuite/chat", "OpenAI-shaped chat completion", ChatCompletion,
       response=R.Completion),
    Op("post", "/api/v1/run", "Ask once (stateless with your documents, or in a chat)", Run,
       run_body=True, response=R.RunAnswer),
    Op("post", "/api/v1/run/audio", "Ask once and hear the answer (?format=wav|mp3); headers "
       "X-Parlour-Transcript, X-Parlour-Message-Id", Run, run_body=True,
       content_type="audio/wav"),
    Op("post", "/api/v1/audio/transcriptions", "Speech to text: multipart `file` → {text}",
       multipart=True, multipart_field="file", response=R.Transcription),
    Op("post", "/api/v1/prompt_compiler/compile", "A prompt as a template with {{name}} "
       "parameters", CompileRequest, response=R.CompiledPrompt),
    Op("post", "/api/v1/prompt_compiler/compile/form", "The same plus a JSON Schema form",
       CompileRequest, response=R.CompiledForm),
    Op("post", "/api/v1/prompt_compiler/update_parameters", "Parameter values read from text",
       UpdateParameters, response=R.ParameterValues),
    Op("get", "/api/v1/tools", "Tools a room can enable: name, description, parameters, "
       "source, configured", response=R.Tools),
    Op("get", "/api/v1/session_id", "A new room id for the plain WebSocket",
       response=R.SessionId),
    Op("get", "/api/v1/metrics", "Questions, answers, latency, tokens, cost (all for admins)",
       query=MetricsQuery, response=R.UserMetrics),
    Op("get", "/api/v1/metrics/sessions/{chat_id}", "The same for one chat",
       response=R.UserMetrics),
    Op("get", "/internal/health", "Backend health", auth=False, response=R.Health),
    Op("post", "/api/v1/keys", "Create a personal API key (the key is shown only here)",
       CreateKey, ok=201, response=R.ApiKeyCreated),
    Op("get", "/api/v1/keys", "Your personal API keys", response=R.ApiKeys),
    Op("delete", "/api/v1/keys/{key_id}", "Revoke a key, on every node at once", ok=204),
    Op("get", "/v1/models", "OpenAI-compatible: the models this server answers with",
       response=R.OpenAIModelList, openai=True),
    Op("get", "/v1/models/{model}", "OpenAI-compatible: one model", response=R.OpenAIModel,
       openai=True),
    Op("post", "/v1/chat/completions", "OpenAI-compatible chat completion (SSE chunks when "
       "`stream`)", ChatCompletionRequest, response=R.ChatCompletionAnswer, openai=True),
    Op("post", "/v1/embeddings", "OpenAI-compatible embeddings (the configured backend)",
       EmbeddingRequest, response=R.EmbeddingList, openai=True),
    Op("get", "/internal/metrics", "Prometheus metrics", auth=False,
       content_type="text/plain"),
    Op("get", "/login-success-redirect", "After single sign-on: the page that trades the "
       "one-time token", query=LoginLanding, auth=False, content_type="text/html"),
]

OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type", "code"],
                             "properties": {
                                 "message": {"type": "string"}, "type": {"type": "string"},
                                 "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                                 "param": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}},
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}}},
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    """A $ref to `model`, its schema (and its nested ones) added to the components."""
    name = model.__name__
    if name not in components:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def _success(op: Op, components: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": "success"}
    if op.response is None and op.content_type is not None and op.run_body:
        answer["content"] = {op.content_type: {"schema": {"type": "string", "format": "binary"}}}
    elif op.response is not None:
        content: dict[str, Any] = {"application/json": {"schema": _schema(op.response, components)}}
        if op.run_body:
            content["text/event-stream"] = {"schema": {
                "type": "string", "description": "`event: delta` lines, then `event: done`"}}
        if op.openai and op.body is not None:
            content["text/event-stream"] = {"schema": {
                "type": "string", "description": "`data: {chat.completion.chunk}` lines, "
                "then `data: [DONE]`; a failure mid-stream is a `data: {\"error\": ...}` line"}}
        answer["content"] = content
    elif op.content_type is not None:
        answer["content"] = {op.content_type: {"schema": {"type": "string", "format": "binary"}}}
    return answer


def _operation(op: Op, components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "responses": {
        str(op.ok): _success(op, components),
        "default": {"description": "error", "content": {"application/json": {"schema": {
            "$ref": f"#/components/schemas/{'OpenAIError' if op.openai else 'Error'}"}}}},
    }}
    params = [{"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
              for part in op.path.split("/") if part.startswith("{")]
    if op.query is not None:
        schema = op.query.model_json_schema()
        params += [{"name": name, "in": "query", "required": False, "schema": prop}
                   for name, prop in schema.get("properties", {}).items()]
    if params:
        out["parameters"] = params
    if op.body is not None:
        ref = _schema(op.body, components)
        out["requestBody"] = {"required": op.body.__name__ != "RefreshRequest", "content": {
            "application/json": {"schema": ref}}}
        if op.run_body:
            out["requestBody"]["content"].update({
                "application/x-www-form-urlencoded": {"schema": ref},
                "multipart/form-data": {"schema": ref},
            })
    if op.form:
        out["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": list(op.form),
                "properties": {f: {"type": "string"} for f in op.form}}}}}
    if op.multipart:
        field = op.multipart_field
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [field], "properties": {field: {
                "type": "array", "items": {"type": "string", "format": "binary"},
                "description": f"one part named `{field}` per file"}}}}}}
    if op.openai:
        out["security"] = [{"bearer": []}]
    elif op.auth:
        out["security"] = [{"bearer": []}, {"cookie": []}]
    return out


def build_spec() -> dict[str, Any]:
    """The OpenAPI document."""
    components: dict[str, Any] = {"Error": ERROR, "OpenAIError": OPENAI_ERROR}
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Parlour", "version": __version__,
                 "description": "REST sidecar of the Parlour realtime assistant server."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or plr_ key",
                       "description": "An access token, or a personal API key (`plr_...`)"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "access_token"},
        }},
    }


DOCS_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Parlour API</title><link rel="stylesheet" href="vendor/swagger/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="vendor/swagger/swagger-ui-bundle.js"></script>
<script src="vendor/swagger/init.js"></script></body></html>"""


def setup(app: web.Application) -> None:
    """Register /openapi.json and /docs."""
    spec = build_spec()
    base = app[SETTINGS].server.base_path
    if base:  # the paths are relative to the server's mount point
        spec["servers"] = [{"url": base}]

    async def openapi(request: web.Request) -> web.Response:
        return json_response(spec)

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=DOCS_HTML, content_type="text/html")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
