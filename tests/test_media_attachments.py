"""Attachments reach the model: a photo in a room and in /run arrives as an image part
(resized), documents as text; what cannot be given is refused before anything is sent."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from app.llm.aisuite_provider import AisuiteProvider
from app.llm.base import ChatMessage, ChatParams, ImagePart
from tests.client import Parlour, start_parlour
from tests.llm_tool_stubs import AnthropicToolStub, Turn
from tests.media_fixtures import jpeg, png
from tests.media_stubs import OpenAIMediaStub
from tests.test_files import new_chat, upload
from tests.tool_stubs import serve


@pytest.fixture
async def stub() -> AsyncIterator[tuple[OpenAIMediaStub, str]]:
    fake = OpenAIMediaStub()
    async with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
async def server(
    make_settings: Any, stub: tuple[OpenAIMediaStub, str], llm_env: pytest.MonkeyPatch,
) -> AsyncIterator[Parlour]:
    _, url = stub
    llm_env.setenv("OPENAI_API_KEY", "test-key")
    server = await start_parlour(make_settings(
        llm__openai_base_url=f"{url}/v1", llm__default_model="openai:gpt-4o-mini",
        assistant__delta_interval_ms=0,
    ))
    yield server
    await server.close()


def images_sent(request: dict[str, Any]) -> list[Image.Image]:
    """The images of the last user turn of a recorded chat request, decoded."""
    content = request["messages"][-1]["content"]
    assert isinstance(content, list), content
    found = []
    for part in content:
        if part["type"] == "image_url":
            url = part["image_url"]["url"]
            head, data = url.split(",", 1)
            assert head.startswith("data:image/") and head.endswith(";base64")
            found.append(Image.open(io.BytesIO(base64.b64decode(data))))
    return found


def text_sent(request: dict[str, Any]) -> str:
    content = request["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p["type"] == "text")


async def test_a_photo_in_a_room_reaches_a_vision_model_resized(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    fake.turns.append(Turn(text=("A gradient.",)))
    user = await server.signup()
    chat_id = await new_chat(server, user)
    status, data = await upload(server, user, chat_id, ("big.jpg", jpeg(3000, 1500), None))
    assert status == 201, data
    file_id = data["files"][0]["file_id"]
    client = await server.socket(user)
    await client.ok("join_room", {"room_id": chat_id})
    ack = await client.ok("send_message", {"room_id": chat_id, "content": "what is in this picture?",
                                          "file_ids": [file_id]})
    assert ack["message"]["file_ids"] == [file_id]
    done = (await client.wait("assistant_done", timeout=30))[0]
    assert done["message"]["content"] == "A gradient." and done["finish_reason"] == "stop"
    (image,) = images_sent(fake.requests[0])
    assert image.size == (2048, 1024)  # longest side 2,048 px, aspect kept
    assert "what is in this picture?" in text_sent(fake.requests[0])


async def test_run_takes_images_as_multipart_and_as_json(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    fake.turns += [Turn(text=("Red.",)), Turn(text=("Small and red.",))]
    user = await server.signup()
    form = aiohttp.FormData()
    form.add_field("text", "what colour?")
    form.add_field("files", png(300, 200), filename="red.png", content_type="image/png")
    status, data = await server.request("POST", "/api/v1/run", user, data=form)
    assert status == 200 and data["answer"] == "Red.", data
    (image,) = images_sent(fake.requests[0])
    assert image.size == (300, 200) and image.getpixel((10, 10))[:3] == (200, 30, 30)

    body = {"text": "describe", "attachments": [{
        "filename": "dot.png", "content_type": "image/png",
        "data_base64": base64.b64encode(png(20, 10)).decode()}]}
    status, data = await server.request("POST", "/api/v1/run", user, json=body)
    assert status == 200 and data["answer"] == "Small and red.", data
    (image,) = images_sent(fake.requests[1])
    assert image.size == (20, 10)


async def test_documents_go_as_text(server: Parlour, stub: tuple[OpenAIMediaStub, str]) -> None:
    fake, _ = stub
    fake.turns.append(Turn(text=("Tuesday.",)))
    user = await server.signup()
    form = aiohttp.FormData()
    form.add_field("text", "when is the meeting?")
    form.add_field("files", b"The meeting is on Tuesday at 10.", filename="notes.txt",
                   content_type="text/plain")
    status, data = await server.request("POST", "/api/v1/run", user, data=form)
    assert status == 200, data
    sent = text_sent(fake.requests[0])
    assert "notes.txt" in sent and "The meeting is on Tuesday at 10." in sent


async def test_bad_attachments_are_refused_and_nothing_is_sent(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    user, other = await server.signup(), await server.signup()
    chat_id = await new_chat(server, user)
    others_chat = await new_chat(server, other)
    _, data = await upload(server, other, others_chat, ("theirs.png", png(), None))
    theirs = data["files"][0]["file_id"]
    client = await server.socket(user)
    ack = await client.call("send_message", {"room_id": chat_id, "content": "look",
                                             "file_ids": [theirs]})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack

    def run_with(name: str, payload: bytes) -> dict[str, Any]:
        return {"text": "look", "attachments": [
            {"filename": name, "content_type": "image/png",
             "data_base64": base64.b64encode(payload).decode()}]}

    status, data = await server.request("POST", "/api/v1/run", user,
                                        json=run_with("broken.png", b"\x89PNG\r\n\x1a\nnot an image"))
    assert status == 422 and data["error"]["code"] == "invalid_payload", data
    assert "broken.png" in data["error"]["message"]
    status, data = await server.request("POST", "/api/v1/run", user, json=run_with("empty.png", b""))
    assert status == 422 and "empty.png" in data["error"]["message"], data
    form = aiohttp.FormData()
    form.add_field("text", "look")
    form.add_field("files", io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * (21 * 1024 * 1024)),
                   filename="huge.png", content_type="image/png")
    status, data = await server.request("POST", "/api/v1/run", user, data=form)
    assert status == 413 and data["error"]["code"] == "payload_too_large", data
    assert "huge.png" in data["error"]["message"]
    assert fake.requests == []  # none of it reached the model


async def test_a_model_without_vision_is_named_and_nothing_is_stored(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    user = await server.signup()
    chat_id = await new_chat(server, user, model="openai:o3-mini")
    _, data = await upload(server, user, chat_id, ("photo.png", png(), None))
    client = await server.socket(user)
    ack = await client.call("send_message", {"room_id": chat_id, "content": "what is it?",
                                             "file_ids": [data["files"][0]["file_id"]]})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack
    assert "openai:o3-mini" in ack["error"]["message"]
    _, history = await server.request("GET", f"/api/v1/chat/{chat_id}/messages", user)
    assert history["messages"] == []
    form = aiohttp.FormData()
    form.add_field("text", "what is it?")
    form.add_field("model", "openai:o3-mini")
    form.add_field("files", png(), filename="photo.png", content_type="image/png")
    status, body = await server.request("POST", "/api/v1/run", user, data=form)
    assert status == 422 and "openai:o3-mini" in body["error"]["message"], body
    assert fake.requests == []


async def test_anthropic_gets_image_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    fake = AnthropicToolStub(turns=[Turn(text=("A square.",))])
    image = ImagePart("image/png", png(8, 8))
    async with serve(fake.app()) as url:
        provider = AisuiteProvider("anthropic", client_config={"base_url": url, "max_retries": 0})
        try:
            events = [e async for e in provider.stream_chat(
                [ChatMessage("user", "what is it?", images=(image,))], "claude-test",
                ChatParams(max_tokens=50))]
        finally:
            await provider.close()
    assert events[0].text == "A square."  # type: ignore[union-attr]
    content = fake.requests[0]["messages"][0]["content"]
    assert {"type": "text", "text": "what is it?"} in content
    block = next(b for b in content if b["type"] == "image")
    assert block["source"]["media_type"] == "image/png"
    assert base64.b64decode(block["source"]["data"]) == image.data


async def test_a_video_over_the_upload_limit_is_payload_too_large(make_settings: Any) -> None:
    from tests.media_fixtures import short_video

    server = await start_parlour(make_settings(limits__max_upload_mb=0.01))
    try:
        user = await server.signup()
        clip = short_video()
        assert len(clip) > 0.01 * 1024 * 1024
        form = aiohttp.FormData()
        form.add_field("text", "what happens?")
        form.add_field("files", clip, filename="clip.mp4", content_type="video/mp4")
        status, data = await server.request("POST", "/api/v1/run", user, data=form)
        assert status == 413 and data["error"]["code"] == "payload_too_large", data
        assert "clip.mp4" in data["error"]["message"]
        chat_id = await new_chat(server, user)
        status, data = await upload(server, user, chat_id, ("clip.mp4", clip, "video/mp4"))
        assert status == 413 and data["error"]["code"] == "payload_too_large", data
    finally:
        await server.close()


async def test_a_corrupt_photo_in_a_room_ends_the_reply_with_invalid_payload(
    server: Parlour, stub: tuple[OpenAIMediaStub, str],
) -> None:
    fake, _ = stub
    user = await server.signup()
    chat_id = await new_chat(server, user)
    # PNG by its first bytes (so it is kept as image/png), but nothing after them.
    status, data = await upload(server, user, chat_id,
                                ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, None))
    assert status == 201 and data["files"][0]["content_type"] == "image/png", data
    client = await server.socket(user)
    await client.ok("join_room", {"room_id": chat_id})
    await client.ok("send_message", {"room_id": chat_id, "content": "what is it?",
                                     "file_ids": [data["files"][0]["file_id"]]})
    (error,) = await client.wait("error", timeout=30)
    assert error["code"] == "invalid_payload" and "broken.png" in error["message"], error
    assert fake.requests == []  # nothing reached the model
