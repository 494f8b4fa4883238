"""`/api/v1/chat`: rooms over REST, the same RoomService as the socket events."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from app.models import Room
from app.schemas import CreateRoom, Payload, RoomSettings
from handlers.common import body, json_response, principal, query, services


class ListChats(Payload):
    cursor: str | None = None
    limit: int = Field(20, ge=1, le=100)


class ListMessages(Payload):
    before_seq: int | None = Field(None, ge=0)
    after_seq: int | None = Field(None, ge=0)
    limit: int = Field(50, ge=1, le=500)


def chat_json(room: Room) -> dict[str, Any]:
    """A room as a REST chat object (`chat_id` == `room_id`)."""
    return {"chat_id": room.room_id, **room.model_dump(mode="json")}


async def list_chats(request: web.Request) -> web.Response:
    q = query(request, ListChats)
    rooms, next_cursor = await services(request).rooms.list_rooms(
        principal(request), q.cursor, q.limit
    )
    return json_response({"chats": [chat_json(r) for r in rooms], "next_cursor": next_cursor})


async def list_public_chats(request: web.Request) -> web.Response:
    q = query(request, ListChats)
    rooms, next_cursor = await services(request).rooms.list_public(
        principal(request), q.cursor, q.limit
    )
    return json_response({"chats": [chat_json(r) for r in rooms], "next_cursor": next_cursor})


async def create_chat(request: web.Request) -> web.Response:
    room = await services(request).rooms.create_room(
        principal(request), await body(request, CreateRoom)
    )
    return json_response(chat_json(room), status=201)


async def get_chat(request: web.Request) -> web.Response:
    room = await services(request).rooms.load(principal(request), request.match_info["chat_id"])
    return json_response(chat_json(room))


async def patch_chat(request: web.Request) -> web.Response:
    room = await services(request).rooms.update_room(
        principal(request), request.match_info["chat_id"], await body(request, RoomSettings)
    )
    return json_response(chat_json(room))


async def delete_chat(request: web.Request) -> web.Response:
    await services(request).rooms.delete_room(principal(request), request.match_info["chat_id"])
    return web.Response(status=204)


async def list_messages(request: web.Request) -> web.Response:
    q = query(request, ListMessages)
    messages = await services(request).rooms.list_messages(
        principal(request), request.match_info["chat_id"],
        before_seq=q.before_seq, after_seq=q.after_seq, limit=q.limit,
    )
    return json_response({"messages": [m.model_dump(mode="json") for m in messages]})


def setup(app: web.Application) -> None:
    """Register the chat routes."""
    app.router.add_get("/api/v1/chat", list_chats)
    app.router.add_post("/api/v1/chat", create_chat)
    # Before /chat/{chat_id}: "public" is not a chat id.
    app.router.add_get("/api/v1/chat/public", list_public_chats)
    app.router.add_get("/api/v1/chat/{chat_id}", get_chat)
    app.router.add_patch("/api/v1/chat/{chat_id}", patch_chat)
    app.router.add_delete("/api/v1/chat/{chat_id}", delete_chat)
    app.router.add_get("/api/v1/chat/{chat_id}/messages", list_messages)
