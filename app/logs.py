"""Structured logs: JSON lines in production, readable lines in a terminal."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from typing import Any, TextIO

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Third-party loggers that log every request at INFO (httpx: each health probe of the
# local model; openai, urllib3, aiohttp.access: each call): only their warnings show.
QUIET_LOGGERS = (
    "engineio.server", "socketio.server", "aiohttp.access", "pymongo", "httpx", "httpx2",
    "httpcore", "httpcore2",
    "openai", "urllib3", "botocore", "aiobotocore", "pinecone",
)


class MalformedPacketFilter(logging.Filter):
    """Engine.IO logs a client's malformed packet as an error with a traceback: any client
    could fill the logs that way. Such records become one warning line, without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (ValueError, TypeError, IndexError, KeyError, UnicodeError)):
            record.msg = f"{record.getMessage()} (malformed client packet: {exc!s:.200})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_malformed_packets() -> None:
    """Install MalformedPacketFilter on Engine.IO's logger (once)."""
    logger = logging.getLogger("engineio.server")
    if not any(isinstance(f, MalformedPacketFilter) for f in logger.filters):
        logger.addFilter(MalformedPacketFilter())
# Line breaks and other control characters (C0, DEL, C1, Unicode line separators).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with control characters written as escapes: one record stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


class TextFormatter(logging.Formatter):
    """Readable lines; a message cannot forge a line (e.g. a %0a in a URL path).

    A traceback still spans lines: it is added after the message, by us, not the client.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes its lines in batches, not one write per line.

    On the event loop, lines wait at most `delay` seconds (or until `max_bytes` are
    pending); warnings and errors, and lines logged outside a running loop, are written
    at once with everything before them. `flush()` (also run at exit) writes the rest.
    """

    def __init__(self, stream: TextIO | None = None, delay: float = 0.1,
                 max_bytes: int = 64 * 1024) -> None:
        super().__init__(stream)
        self._follow_stderr = stream is None  # sys.stderr at write time, as logging.lastResort
        self._delay = delay
        self._max_bytes = max_bytes
        self._pending: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock around emit.
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self._max_bytes:
            self._write()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        if self._timer is None or self._timer_loop is not loop:  # none yet, or a dead loop's
            self._timer_loop = loop
            self._timer = loop.call_later(self._delay, self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        try:
            if self._follow_stderr:
                self.stream = sys.stderr
            if self._pending:
                self.stream.write("".join(self._pending))
                self._pending.clear()
                self._size = 0
            if hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:
            self._pending.clear()
            self._size = 0


def log_handler(fmt: str, production: bool, stream: TextIO | None = None) -> logging.Handler:
    """The handler `setup_logging` installs: JSON lines or escaped text lines, batched."""
    use_json = fmt == "json" or (fmt == "auto" and (production or not sys.stderr.isatty()))
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(
        JsonFormatter() if use_json
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    return handler


def setup_logging(fmt: str, level: str, production: bool) -> None:
    """Configure the root logger once."""
    handler = log_handler(fmt, production)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # With log_level DEBUG they speak too (that is what DEBUG is for).
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(quiet)
