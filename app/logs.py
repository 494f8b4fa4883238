"""Structured logs: JSON lines in production, readable lines in a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

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


def setup_logging(fmt: str, level: str, production: bool) -> None:
    """Configure the root logger once."""
    use_json = fmt == "json" or (fmt == "auto" and (production or not sys.stderr.isatty()))
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if use_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # With log_level DEBUG they speak too (that is what DEBUG is for).
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(quiet)
