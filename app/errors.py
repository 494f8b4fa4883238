"""Error codes shared by every transport, and the one exception type services raise."""

from __future__ import annotations

from typing import Final

INVALID_PAYLOAD: Final = "invalid_payload"
UNAUTHORIZED: Final = "unauthorized"
FORBIDDEN: Final = "forbidden"
NOT_FOUND: Final = "not_found"
CONFLICT: Final = "conflict"
RATE_LIMITED: Final = "rate_limited"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
UNAVAILABLE: Final = "unavailable"
PROVIDER_ERROR: Final = "provider_error"
INTERNAL: Final = "internal"

HTTP_STATUS: Final[dict[str, int]] = {
    INVALID_PAYLOAD: 422,
    UNAUTHORIZED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    CONFLICT: 409,
    RATE_LIMITED: 429,
    PAYLOAD_TOO_LARGE: 413,
    UNAVAILABLE: 503,
    PROVIDER_ERROR: 502,
    INTERNAL: 500,
}


class AppError(Exception):
    """A failure with a stable code that clients can act on."""

    def __init__(
        self, code: str, message: str, *, status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else HTTP_STATUS.get(code, 500)
        # Seconds after which trying again can succeed (REST sends it as Retry-After).
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, str]:
        """The `{code, message}` body used by acks, error events and REST."""
        return {"code": self.code, "message": self.message}


DEFAULT_RETRY_AFTER: Final = 5  # seconds, for a 429 that does not know better


def rate_limited(message: str, retry_after: int) -> AppError:
    """`rate_limited`, with the seconds after which the caller may try again."""
    return AppError(RATE_LIMITED, message, retry_after=max(1, retry_after))


def not_found(what: str) -> AppError:
    """A uniform 404: never says whether the id exists for someone else."""
    return AppError(NOT_FOUND, f"{what} not found")


def invalid(message: str) -> AppError:
    """Bad input with a message naming the field."""
    return AppError(INVALID_PAYLOAD, message)


def error_from_exception(exc: BaseException) -> AppError:
    """The one mapping from any exception to a client-facing error."""
    if isinstance(exc, AppError):
        return exc
    # Imported here so this module stays importable without the drivers.
    from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(exc, ServerSelectionTimeoutError | ConnectionFailure | RedisConnectionError):
        return AppError(UNAVAILABLE, "a backend service is unavailable; try again shortly")
    if isinstance(exc, TimeoutError):
        return AppError(UNAVAILABLE, "the operation timed out; try again")
    return AppError(INTERNAL, "internal error")
