"""Structured logs: JSON lines in production, readable lines in a terminal."""

from __future__ import annotations

import logging
import re
import sys
from typing import IO, Any

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Third-party loggers that log every request at INFO (httpx: each health probe of the
# local model; openai, urllib3, aiohttp.access: each call): only their warnings show.
QUIET_LOGGERS = (
    "engineio.server", "socketio.server", "aiohttp.access", "pymongo", "httpx", "httpx2",
    "httpcore", "httpcore2",
    "openai", "urllib3", "botocore", "aiobotocore", "pinecone",
)


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


def log_handler(fmt: str, production: bool, stream: IO[str] | None = None) -> logging.Handler:
    """The handler `setup_logging` installs: JSON lines or escaped text lines."""
    use_json = fmt == "json" or (fmt == "auto" and (production or not sys.stderr.isatty()))
    handler = logging.StreamHandler(stream)
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
