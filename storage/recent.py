"""The latest messages of recently active rooms, kept by this node for reply prompts.

A reply's prompt is the room's history up to the question. Reading it is the costliest
database call of a reply (a page of up to 200 documents), so each node keeps the tail
of the rooms it writes to, exact up to the last seq it holds:

- a tail is a contiguous run of seqs, started by a page read from the database that
  ends at the question, or by a room's first message (seq 1);
- a message this node stored extends the tail only when its seq is the next one;
  anything else (another node wrote in between) drops the tail;
- updates this node makes (checkpoints, final replies) replace the copy.

Seqs are unique and gap-free, so a page *below a known seq* served from a contiguous
tail is the same page the database holds. Only a reply still streaming can change
(on another node): callers read those again (`streaming_ids`). Bounded by rooms, by
messages per room and by characters in all; the least recently used rooms go first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.models import Message

PER_ROOM = 200  # messages held per room (the history a reply reads at most)
MAX_ROOMS = 512
MAX_CHARS = 8_000_000  # content characters held in all rooms


@dataclass(slots=True)
class _Tail:
    messages: deque[Message] = field(default_factory=deque)
    chars: int = 0

    @property
    def first(self) -> int:
        return self.messages[0].seq

    @property
    def last(self) -> int:
        return self.messages[-1].seq


class RecentMessages:
    """Per-room tails of at most `per_room` messages (see the module docstring)."""

    def __init__(self, per_room: int = PER_ROOM, max_rooms: int = MAX_ROOMS,
                 max_chars: int = MAX_CHARS) -> None:
        self._per_room = per_room
        self._max_rooms = max_rooms
        self._max_chars = max_chars
        self._tails: OrderedDict[str, _Tail] = OrderedDict()
        self._chars = 0

    def below(self, room_id: str, before_seq: int, limit: int) -> list[Message] | None:
        """The latest `limit` messages with seq < before_seq, oldest first; None: not held."""
        tail = self._tails.get(room_id)
        upto = before_seq - 1
        if tail is None or limit > self._per_room or not tail.messages or tail.last < upto:
            return None
        low = max(upto - limit + 1, 1)
        if tail.first > low:
            return None
        self._tails.move_to_end(room_id)
        start = low - tail.first
        return [tail.messages[i] for i in range(start, start + upto - low + 1)]

    def read(self, room_id: str, messages: Sequence[Message], upto: int) -> None:
        """A page read from the database, every seq up to `upto` (ascending, contiguous)."""
        if not messages:
            return
        if messages[-1].seq != upto or messages[-1].seq - messages[0].seq + 1 != len(messages):
            return
        tail = self._tails.get(room_id)
        if tail is not None and tail.messages and tail.last >= upto:
            return  # what is held is as new or newer
        self.forget(room_id)
        tail = _Tail()
        self._tails[room_id] = tail
        for message in messages[-self._per_room:]:
            self._push(tail, message)
        self._shrink()

    def stored(self, message: Message) -> None:
        """This node stored a message: extend its room's tail, or drop it if seqs are missing."""
        room_id = message.room_id
        tail = self._tails.get(room_id)
        if tail is None:
            if message.seq != 1:
                return
            tail = self._tails[room_id] = _Tail()
        elif not tail.messages or tail.last + 1 != message.seq:
            self.forget(room_id)
            return
        self._push(tail, message)
        while len(tail.messages) > self._per_room:
            self._pop(tail)
        self._shrink()

    def updated(self, message: Message) -> None:
        """This node changed a message (a reply's checkpoint or end): keep the new copy."""
        tail = self._tails.get(message.room_id)
        if tail is None or not tail.messages:
            return
        i = message.seq - tail.first
        if 0 <= i < len(tail.messages) and tail.messages[i].message_id == message.message_id:
            old = tail.messages[i]
            tail.messages[i] = message
            delta = len(message.content) - len(old.content)
            tail.chars += delta
            self._chars += delta
            self._shrink()

    def forget(self, room_id: str) -> None:
        """Drop a room's tail (room deleted, seqs out of step)."""
        tail = self._tails.pop(room_id, None)
        if tail is not None:
            self._chars -= tail.chars

    def _push(self, tail: _Tail, message: Message) -> None:
        tail.messages.append(message)
        tail.chars += len(message.content)
        self._chars += len(message.content)

    def _pop(self, tail: _Tail) -> None:
        old = tail.messages.popleft()
        tail.chars -= len(old.content)
        self._chars -= len(old.content)

    def _shrink(self) -> None:
        while self._tails and (len(self._tails) > self._max_rooms
                               or self._chars > self._max_chars):
            _, tail = self._tails.popitem(last=False)
            self._chars -= tail.chars


def streaming_ids(messages: Sequence[Message]) -> list[str]:
    """Replies still streaming in a page held in memory: their text may have moved on."""
    return [m.message_id for m in messages if m.status == "streaming"]
