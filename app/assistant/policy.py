"""When the assistant answers, and the retriever interface it asks for sources."""

from __future__ import annotations

import re

from app.models import Message, Room, Source

MENTION = re.compile(r"(^|\W)@assistant\b", re.IGNORECASE)


# What a room offers to search: (its files, the asker's documents, it is their private chat).
Searchable = tuple[bool, bool, bool]


class Retriever:
    """Finds sources for a question (replaced when retrieval is configured)."""

    async def searchable(self, room: Room, asker_id: str | None) -> Searchable | None:
        """What there is to search for this asker in this room (None: nothing to find out).

        Asked when a reply is admitted, while its question is being stored.
        """
        return None

    async def retrieve(
        self, room: Room, question: Message, *, recall: bool = True,
        searchable: Searchable | None = None,
    ) -> tuple[list[Source], str]:
        """The sources and the text to put in the context.

        `recall`: older turns fell out of the context window, so search them too.
        `searchable`: `searchable()`'s answer when it was asked already.
        """
        return [], ""


def wants_reply_text(room: Room, content: str) -> bool:
    """Whether the room's assistant mode answers a user message with this content.

    Voice rooms answer typed messages like any room (in text); spoken turns always.
    """
    if room.assistant_mode == "off":
        return False
    return room.assistant_mode == "always" or bool(MENTION.search(content))
