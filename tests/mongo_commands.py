"""The database commands a test's servers send, from pymongo's command monitoring."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from pymongo import monitoring

TRANSACTIONS = ("commitTransaction", "abortTransaction")


class Commands(monitoring.CommandListener):
    """(command, collection) of every command sent while `counting`.

    `only`: count the commands on these collections (and transactions), not all.
    """

    def __init__(self, only: Collection[str] | None = None, *, counting: bool = True) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.counting = counting
        self._only = only

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.counting:
            return
        target = event.command.get(event.command_name)
        collection = target if isinstance(target, str) else ""
        if self._only is None or collection in self._only or event.command_name in TRANSACTIONS:
            self.seen[(event.command_name, collection)] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None

    def take(self) -> Counter[tuple[str, str]]:
        """What was counted so far, and start again from nothing."""
        seen, self.seen = self.seen, Counter()
        return seen


@contextmanager
def listening(listener: Commands) -> Iterator[Commands]:
    """`listener` hears the clients created inside the block."""
    monitoring.register(listener)
    try:
        yield listener
    finally:
        monitoring._LISTENERS.command_listeners.remove(listener)
