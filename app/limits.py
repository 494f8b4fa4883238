"""One limit per concept on every path: the message size, and the transports' hard cap."""

from __future__ import annotations

from app.config import LimitsSettings
from app.errors import PAYLOAD_TOO_LARGE, AppError

MIB = 1024 * 1024
# Bytes per character in the worst case of JSON text (a control character as \uXXXX).
JSON_BYTES_PER_CHAR = 6


def transport_cap_bytes(limits: LimitsSettings) -> int:
    """The most bytes one Socket.IO event, plain WebSocket frame or JSON body may hold.

    Well above `limits.max_message_chars` (with room for JSON escaping), so an oversized
    message reaches validation and is refused with `payload_too_large` instead of being
    dropped by the transport. Only beyond this cap does Engine.IO close the connection
    (and REST answer 413 without reading the body).
    """
    return max(4 * MIB, JSON_BYTES_PER_CHAR * limits.max_message_chars + 64 * 1024)


def check_message_chars(chars: int, limits: LimitsSettings, field: str) -> None:
    """`payload_too_large` naming the field and the setting when a text is too long."""
    if chars > limits.max_message_chars:
        raise AppError(
            PAYLOAD_TOO_LARGE,
            f"{field}: {chars} characters, at most {limits.max_message_chars} "
            "(limits.max_message_chars)",
        )
