"""Errors as HTTP answers: one table from exception class to status, and the body `{"error": {"type", "message"}}`.

    FeatureReferenceError (unknown view, feature, service)        404
    DefinitionError, EntityFrameError, PushError, a bad body      422
    OnlineStoreError, Redis connection errors and timeouts        503
    any other FeatureStoreError                                   500, with its message
    anything else                                                 500, "see the server log" (logged with its trace)

The server's own refusals (401, 403, 404 of a path, 405, 413, 422 of a malformed body) raise `HttpError`.
"""

import logging
from collections.abc import Sequence

import orjson
import redis

from feature_assets.language.errors import (
    DefinitionError,
    EntityFrameError,
    FeatureReferenceError,
    FeatureStoreError,
    OnlineStoreError,
    PushError,
)

logger = logging.getLogger("feature_store.server")

STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (FeatureReferenceError, 404),
    (EntityFrameError, 422),
    (PushError, 422),
    (DefinitionError, 422),
    (OnlineStoreError, 503),
    (redis.exceptions.ConnectionError, 503),
    (redis.exceptions.TimeoutError, 503),
    (FeatureStoreError, 500),
)
"""Exception class to HTTP status, first match wins (so subclasses come before their bases)."""

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    422: "UnprocessableEntity",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class HttpError(Exception):
    """A refusal decided by the server itself: an HTTP status, a message saying what to fix, extra headers."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


def error_body(error_type: str, message: str) -> bytes:
    """Return the JSON body of an error answer."""
    return orjson.dumps({"error": {"type": error_type, "message": message}})


def status_of(error: BaseException) -> int:
    """Return the HTTP status an exception is answered with."""
    if isinstance(error, HttpError):
        return error.status
    for error_class, status in STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


def error_answer(error: BaseException, where: str) -> tuple[int, bytes]:
    """Return the status and JSON body answering `error` raised while serving `where`; log unexpected ones."""
    status = status_of(error)
    if isinstance(error, HttpError):
        return status, error_body(REASONS.get(status, "Error"), error.message)
    if isinstance(error, FeatureStoreError | redis.exceptions.RedisError):
        if isinstance(error, redis.exceptions.RedisError) and not isinstance(error, OnlineStoreError):
            message = f"Redis is unreachable ({error}); check that it is up and REDIS_URL points to it"
        else:
            message = str(error)
        if status == 500:
            logger.error("%s failed: %s", where, message)
        return status, error_body(type(error).__name__, message)
    logger.exception("%s failed with an unexpected error", where)
    return 500, error_body(REASONS[500], f"{where} failed unexpectedly ({type(error).__name__}); see the server log")
