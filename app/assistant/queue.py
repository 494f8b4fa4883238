"""Per-room order of replies on this node: one at a time, the others wait in line."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class RoomQueue(Generic[T]):
    """A line per room. `join` (synchronous) takes a place; `wait_turn` waits to be first.

    Whoever joins must `leave` in a `finally` (the next in line then goes), whether it
    got its turn or not.
    """

    def __init__(self) -> None:
        self._lines: dict[str, deque[T]] = {}
        self._turns: dict[T, asyncio.Event] = {}

    def join(self, room_id: str, item: T) -> None:
        """Take the last place in the room's line."""
        line = self._lines.setdefault(room_id, deque())
        line.append(item)
        turn = asyncio.Event()
        self._turns[item] = turn
        if line[0] is item:
            turn.set()

    async def wait_turn(self, item: T) -> None:
        """Return once `item` is first in its room's line."""
        turn = self._turns.get(item)
        if turn is None:
            raise RuntimeError("wait_turn before join")
        await turn.wait()

    def leave(self, room_id: str, item: T) -> None:
        """Give up the place (or the turn); the next in line goes."""
        self._turns.pop(item, None)
        line = self._lines.get(room_id)
        if line is None or item not in line:
            return
        first = line[0] is item
        line.remove(item)
        if not line:
            del self._lines[room_id]
        elif first:
            self._turns[line[0]].set()

    def in_room(self, room_id: str) -> list[T]:
        """Everything in the room's line, first (running) first."""
        return list(self._lines.get(room_id, ()))

    def rooms(self) -> list[str]:
        """Rooms with a line."""
        return list(self._lines)

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())
