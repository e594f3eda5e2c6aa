"""A dependency that is down (database, Redis) is a 503 SERVICE_UNAVAILABLE, not a 500."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.types import ExceptionHandlersMap
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError

from app.http.request_id import request_id_of

log = logging.getLogger("passgate.http")


def _unavailable(what: str) -> Any:
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
        if isinstance(exc, DBAPIError) and not exc.connection_invalidated and not isinstance(
            exc, OperationalError
        ):
            # A DBAPI error that is not about connectivity is a bug, not an outage.
            log.exception("database error (request %s)", request_id_of(request), exc_info=exc)
            body = {"error": "Internal server error.", "code": "INTERNAL_ERROR",
                    "requestId": request_id_of(request)}
            return Response(body, status_code=500, media_type=MediaType.JSON)
        log.warning("%s unavailable (request %s): %s", what, request_id_of(request),
                    type(exc).__name__)
        body = {"error": f"The {what} is unavailable; retry shortly.",
                "code": "SERVICE_UNAVAILABLE", "requestId": request_id_of(request)}
        return Response(body, status_code=503, media_type=MediaType.JSON,
                        headers={"Retry-After": "5"})

    return handler


def dependency_error_handlers() -> ExceptionHandlersMap:
    return {
        DBAPIError: _unavailable("database"),
        RedisConnectionError: _unavailable("rate-limit store"),
        RedisTimeoutError: _unavailable("rate-limit store"),
        ConnectionRefusedError: _unavailable("backing service"),
    }
