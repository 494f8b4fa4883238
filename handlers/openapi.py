"""OpenAPI 3 description of the REST API (`/openapi.json`) and Swagger UI (`/docs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from app import __version__
from app.schemas import CreateRoom, Login, RefreshRequest, RoomSettings, Signup
from handlers.ai import ChatCompletion, MetricsQuery, ModelPage, Run
from handlers.chats import ListChats, ListMessages
from handlers.common import json_response
from handlers.oidc import OIDCCallback, OIDCLogin


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


OPERATIONS = [
    Op("post", "/api/v1/auth/signup", "Create an account", Signup, auth=False, ok=201),
    Op("post", "/api/v1/auth/login", "Log in", Login, auth=False),
    Op("post", "/api/v1/auth/token", "OAuth2 password grant", auth=False,
       form=("username", "password")),
    Op("post", "/api/v1/auth/refresh", "Rotate the refresh token", RefreshRequest, auth=False),
    Op("post", "/api/v1/auth/logout", "Revoke the refresh token", RefreshRequest, auth=False,
       ok=204),
    Op("get", "/api/v1/auth/providers", "Configured single sign-on providers", auth=False),
    Op("get", "/api/v1/auth/me", "The current user"),
    Op("get", "/api/v1/auth/validate-token", "Check an access token: {valid, user}"),
    Op("get", "/api/v1/auth/{provider}/login", "Single sign-on: redirect to the provider",
       query=OIDCLogin, auth=False, ok=302),
    Op("get", "/api/v1/auth/{provider}/callback", "Single sign-on: finish, set the cookies",
       query=OIDCCallback, auth=False, ok=302),
    Op("get", "/api/v1/chat", "The user's chats", query=ListChats),
    Op("post", "/api/v1/chat", "Create a chat", CreateRoom, ok=201),
    Op("get", "/api/v1/chat/public", "Public chats anyone may join", query=ListChats),
    Op("get", "/api/v1/chat/{chat_id}", "One chat"),
    Op("patch", "/api/v1/chat/{chat_id}", "Change a chat (owner)", RoomSettings),
    Op("delete", "/api/v1/chat/{chat_id}", "Delete a chat and its data (owner)", ok=204),
    Op("get", "/api/v1/chat/{chat_id}/messages", "A page of messages", query=ListMessages),
    Op("get", "/api/v1/chat/{chat_id}/usage", "Token and cost totals per model"),
    Op("post", "/api/v1/chat/{chat_id}/upload", "Upload files to a chat", multipart=True,
       ok=201),
    Op("get", "/api/v1/chat/{chat_id}/files", "A chat's files"),
    Op("get", "/api/v1/chat/{chat_id}/files/{file_id}", "Download a file"),
    Op("delete", "/api/v1/chat/{chat_id}/files/{file_id}", "Delete a file", ok=204),
    Op("post", "/api/v1/documents", "Upload knowledge-base documents", multipart=True, ok=202),
    Op("get", "/api/v1/documents", "The user's documents"),
    Op("get", "/api/v1/documents/{document_id}", "One document"),
    Op("get", "/api/v1/documents/{document_id}/content", "Download a document"),
    Op("delete", "/api/v1/documents/{document_id}", "Delete a document", ok=204),
    Op("get", "/api/v1/messages/{message_id}/usage", "Usage of one message"),
    Op("get", "/api/v1/model", "The model catalog", query=ModelPage),
    Op("post", "/api/v1/aisuite/chat", "OpenAI-shaped chat completion", ChatCompletion),
    Op("post", "/api/v1/run", "Ask once (stateless, or in a chat)", Run),
    Op("get", "/api/v1/session_id", "A new room id for the plain WebSocket"),
    Op("get", "/api/v1/metrics", "Questions, answers, latency, tokens, cost (all for admins)",
       query=MetricsQuery),
    Op("get", "/api/v1/metrics/sessions/{chat_id}", "The same for one chat"),
    Op("get", "/internal/health", "Backend health", auth=False),
]

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}}},
}


def _operation(op: Op, components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "responses": {
        str(op.ok): {"description": "success"},
        "default": {"description": "error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
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
        name = op.body.__name__
        components[name] = op.body.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(components[name].pop("$defs", {}))
        out["requestBody"] = {"required": name != "RefreshRequest", "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
    if op.form:
        out["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": list(op.form),
                "properties": {f: {"type": "string"} for f in op.form}}}}}
    if op.multipart:
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "properties": {"files": {
                "type": "array", "items": {"type": "string", "format": "binary"}}}}}}}
    if op.auth:
        out["security"] = [{"bearer": []}, {"cookie": []}]
    return out


def build_spec() -> dict[str, Any]:
    """The OpenAPI document."""
    components: dict[str, Any] = {"Error": ERROR}
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Parlour", "version": __version__,
                 "description": "REST sidecar of the Parlour realtime assistant server."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "access_token"},
        }},
    }


DOCS_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Parlour API</title><link rel="stylesheet" href="/vendor/swagger/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="/vendor/swagger/swagger-ui-bundle.js"></script>
<script src="/vendor/swagger/init.js"></script></body></html>"""


def setup(app: web.Application) -> None:
    """Register /openapi.json and /docs."""
    spec = build_spec()

    async def openapi(request: web.Request) -> web.Response:
        return json_response(spec)

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=DOCS_HTML, content_type="text/html")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
