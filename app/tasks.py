"""Background task helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has finished (its errors are dropped)."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def acquire_in_thread(
    acquire: Callable[[], T], release: Callable[[T], None]
) -> T:
    """`acquire()` in a worker thread (opening a file, making a temp file).

    A caller cancelled meanwhile would drop what the thread then returns (an open file,
    a descriptor): the thread's call is shielded, and `release` gets its result once it
    is done if nobody is left to take it.
    """
    acquiring = asyncio.ensure_future(asyncio.to_thread(acquire))
    try:
        return await asyncio.shield(acquiring)
    except asyncio.CancelledError:
        acquiring.add_done_callback(
            lambda done: None if done.cancelled() or done.exception() is not None
            else release(done.result()))
        raise
