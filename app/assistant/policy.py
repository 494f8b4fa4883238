"""When the assistant answers, and the retriever interface it asks for sources."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.models import Message, Room, Source

MENTION = re.compile(r"(^|\W)@assistant\b", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyJob:
    room_id: str
    reply_to: Message
    requested_by: str


class Retriever:
    """Finds sources for a question (replaced when retrieval is configured)."""

    async def retrieve(
        self, room: Room, question: Message, *, recall: bool = True
    ) -> tuple[list[Source], str]:
        """The sources and the text to put in the context.

        `recall`: older turns fell out of the context window, so search them too.
        """
        return [], ""


def wants_reply(room: Room, message: Message) -> bool:
    """Whether the room's assistant mode answers this user message."""
    if room.room_type != "aisuite" or room.assistant_mode == "off":
        return False
    if room.assistant_mode == "always":
        return True
    return bool(MENTION.search(message.content))


def wants_reply_text(room: Room, content: str) -> bool:
    """wants_reply for a message not yet stored."""
    if room.room_type != "aisuite" or room.assistant_mode == "off":
        return False
    return room.assistant_mode == "always" or bool(MENTION.search(content))
