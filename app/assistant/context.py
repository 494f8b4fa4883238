"""What the model sees: the system prompt, retrieved sources, and the recent turns that fit."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from app.llm.base import ChatMessage, ImagePart
from app.llm.tokens import count_tokens
from app.models import Message, Room

DEFAULT_SYSTEM = (
    "You are {name}, a helpful assistant in a chat room. Answer clearly and concisely."
)
SUMMARY_SHARE = 0.15  # of the history budget, for the summary of turns that did not fit
HISTORY_LIMIT = 200  # messages read back at most


class TokenCache:
    """Token counts per message id (bounded LRU), so long histories are counted once."""

    def __init__(self, size: int = 20_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()  # messages counted (keys start so)

    def knows(self, message_id: str) -> bool:
        """Whether a message was counted before (its text then is most likely cached)."""
        return message_id in self._ids

    def count(self, key: str, text: str) -> int:
        if key in self._counts:
            self._counts.move_to_end(key)
            return self._counts[key]
        n = count_tokens(text)
        self._counts[key] = n
        self._ids[key.split(":", 1)[0]] = None
        if len(self._counts) > self._size:
            self._counts.popitem(last=False)
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return n


def turn_text(message: Message, shared: bool) -> str:
    """A message as the model reads it; in shared rooms user turns carry the speaker."""
    if message.role == "user" and shared and message.author is not None:
        return f"{message.author.name}: {message.content}"
    return message.content


def summarize(turns: Sequence[tuple[str, str]], budget_tokens: int) -> str:
    """An extractive summary of older turns: the start of each, newest kept first."""
    lines: list[str] = []
    used = 0
    for role, text in reversed(turns):
        first = text.strip().split("\n", 1)[0][:200]
        line = f"- {role}: {first}"
        cost = count_tokens(line) + 1
        if used + cost > budget_tokens:
            break
        lines.append(line)
        used += cost
    if not lines:
        return ""
    return "Summary of earlier turns (oldest first):\n" + "\n".join(reversed(lines))


def build_context(
    room: Room,
    history: Sequence[Message],
    *,
    budget_tokens: int,
    assistant_name: str,
    sources_text: str = "",
    cache: TokenCache | None = None,
    attached: tuple[str, str, tuple[ImagePart, ...]] | None = None,
) -> list[ChatMessage]:
    """System prompt, sources, a summary of what overflowed, then the newest turns that fit.

    `attached`: (message id, text, images) its attachments add to that user turn.

    CPU-bound (token counting): call it through `asyncio.to_thread`.
    """
    cache = cache or TokenCache()
    shared = len(room.members) > 1
    system = room.system_prompt.strip() or DEFAULT_SYSTEM.format(name=assistant_name)
    if shared:
        system += " Several people share this room; user turns start with the speaker's name."
    if sources_text:
        system += "\n\n" + sources_text
    remaining = budget_tokens - count_tokens(system) - 8
    usable = [m for m in history if m.role in ("user", "assistant") and (
        m.content.strip() or (attached is not None and m.message_id == attached[0]))]
    texts = [turn_text(m, shared) for m in usable]
    images: dict[str, tuple[ImagePart, ...]] = {}
    if attached is not None:
        message_id, extra, pictures = attached
        images[message_id] = pictures
        texts = [f"{t}\n\n{extra}".strip() if m.message_id == message_id and extra else t
                 for m, t in zip(usable, texts, strict=True)]
    costs = [
        cache.count(f"{m.message_id}:{int(shared)}:{len(t)}", t) + 4
        for m, t in zip(usable, texts, strict=True)
    ]
    summary_budget = 0
    if sum(costs) > remaining:
        # Not everything fits: keep room for a summary of what falls out.
        summary_budget = int(remaining * SUMMARY_SHARE)
        remaining -= summary_budget
    kept: list[ChatMessage] = []
    overflow: list[tuple[str, str]] = []
    for i in range(len(usable) - 1, -1, -1):
        text, cost = texts[i], costs[i]
        if cost > remaining and kept:
            overflow = [(m.role, t) for m, t in zip(usable[: i + 1], texts[: i + 1], strict=True)]
            break
        if cost > remaining:
            # The newest turn alone is too long: keep its end, which is what is asked.
            text = text[-max(remaining, 1) * 3 :]
            cost = remaining
        kept.append(ChatMessage(role=usable[i].role, content=text,
                                images=images.get(usable[i].message_id, ())))
        remaining -= cost
    kept.reverse()
    result = [ChatMessage(role="system", content=system)]
    if overflow and summary_budget:
        summary = summarize(overflow, summary_budget)
        if summary:
            result.append(ChatMessage(role="system", content=summary))
    return result + kept

