"""Every failure leaves as ``{"error", "code", "requestId", "details"?}``, never HTML."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from app.errors import AppError
from app.http.request_id import request_id_of

log = logging.getLogger("passgate.http")

_CODE_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}

_MESSAGE_BY_STATUS = {
    404: "No such route.",
    405: "Method not allowed for this route.",
    413: "The request body is too large.",
}


def _body(request: Request[Any, Any, Any], message: str, code: str, details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "code": code, "requestId": request_id_of(request)}
    if details is not None:
        body["details"] = details
    return body


def _response(
    request: Request[Any, Any, Any],
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    return Response(body, status_code=status, headers=headers or {}, media_type=MediaType.JSON)


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[dict[str, Any]]:
    body = _body(request, exc.message, exc.code, exc.details)
    for name, value in exc.body.items():
        body.setdefault(name, value)
    return _response(request, exc.status, body, exc.headers)


def _validation_details(exc: ValidationException) -> list[dict[str, Any]] | None:
    extra = exc.extra
    if isinstance(extra, list):
        # Litestar reports {"message", "key", "source"}; keep those, drop anything echoing input.
        details = [
            {k: item[k] for k in ("message", "key", "source") if k in item}
            for item in extra
            if isinstance(item, dict)
        ]
        for item in details:
            # A missing body surfaces as the KeyError text of the handler's ``data`` argument.
            if item.get("message") == "'data'" and item.get("source") == "body":
                item["message"] = "A JSON body is required."
        return details or None
    return None


def _validation_message(exc: ValidationException, details: list[dict[str, Any]] | None) -> str:
    """Name the first problem in the message itself: clients often show only ``error``."""
    if details:
        first = details[0]
        key = first.get("key")
        where = f"{key}: " if key and key != "data" else ""
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return f"Invalid request: {where}{first.get('message', 'invalid value')}{more}"
    detail = str(exc.detail or "")
    if detail and not detail.startswith("Validation failed"):
        return f"Malformed request body: {detail}"
    return "The request is not valid."


# How Litestar reports a request body cut short by the client (as a 500 of its own).
_CLIENT_LEFT = "client disconnected prematurely"


def http_error_handler(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500 and exc.detail == _CLIENT_LEFT:
        # Nothing failed here: the caller hung up mid-body (no one reads this answer).
        log.info("client left before sending its whole body (request %s)",
                 request_id_of(request))
        return _response(request, 400, _body(
            request, "The client disconnected before sending the whole request body.",
            "VALIDATION_ERROR", None))
    if status >= 500:
        return internal_error_handler(request, exc)
    code = _CODE_BY_STATUS.get(status, "VALIDATION_ERROR")
    message = _MESSAGE_BY_STATUS.get(status) or str(exc.detail or "Bad request.")
    details = None
    if isinstance(exc, ValidationException):
        details = _validation_details(exc)
        message = _validation_message(exc, details)
    elif status == 400:
        message = f"Malformed request: {message}"
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return _response(request, status, _body(request, message, code, details), headers)


def undecodable_text_handler(
    request: Request[Any, Any, Any], exc: UnicodeDecodeError
) -> Response[dict[str, Any]]:
    """Bytes that are not UTF-8 where text is expected: a JSON string in a body, most often.

    msgspec 0.22 (the locked version) raises ``UnicodeDecodeError`` for invalid UTF-8 inside a
    JSON string rather than its ``DecodeError``, which Litestar maps to a 400; other versions
    differ. passgate decodes nothing of its own that could fail this way (what it decrypts, it
    encrypted and authenticated), so the client sent it, whichever library noticed.
    """
    body = _body(request, "The request contains bytes that are not valid UTF-8.",
                 "VALIDATION_ERROR", None)
    return _response(request, 400, body)


def internal_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    log.exception("unhandled error (request %s)", request_id_of(request), exc_info=exc)
    return _response(
        request, 500, _body(request, "Internal server error.", "INTERNAL_ERROR", None)
    )


def exception_handlers() -> ExceptionHandlersMap:
    return {
        AppError: app_error_handler,
        HTTPException: http_error_handler,
        UnicodeDecodeError: undecodable_text_handler,
        Exception: internal_error_handler,
    }
