"""A user turn with images in OpenAI's content-parts shape (aisuite maps it for Anthropic)."""

from __future__ import annotations

import base64
from typing import Any

from app.llm.base import ChatMessage, ImagePart


def data_url(image: ImagePart) -> str:
    """The image as a `data:` URL."""
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def user_content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """Plain text, or a text part followed by one `image_url` part per image."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    parts.extend(
        {"type": "image_url", "image_url": {"url": data_url(image)}} for image in message.images
    )
    return parts
