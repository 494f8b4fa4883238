"""One Engine.IO detail made cheaper: how a socket's writer waits for its next packets.

python-engineio's `AsyncSocket.poll` waits with `asyncio.wait_for(queue.get(), ...)`,
which on Python 3.11 wraps the wait in a task of its own: one task created, scheduled
and torn down every time a socket's writer wakes up, i.e. for every delivery of a room
event to every member. `asyncio.timeout` bounds the same wait without a task. The
behaviour is python-engineio 4's own: the first packet (None: the socket is closing),
then whatever else is queued, QueueEmpty after ping_interval + ping_timeout of silence.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

from engineio import async_socket, exceptions


async def _poll(self: Any) -> list[Any]:
    """`AsyncSocket.poll` without a task per wait (see the module docstring)."""
    queue = self.queue
    try:
        async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
            first = await queue.get()
        queue.task_done()
    except (TimeoutError, asyncio.CancelledError):
        raise exceptions.QueueEmpty() from None
    if first is None:
        return []
    packets = [first]
    while True:
        try:
            pkt = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)
            break
        packets.append(pkt)
    return packets


def install() -> bool:
    """Use the cheaper poll (python-engineio 4.x only, whose poll it mirrors)."""
    if not version("python-engineio").startswith("4."):
        return False
    async_socket.AsyncSocket.poll = _poll
    return True
