"""The typed error tree services raise; mapped once to the SPEC error body in ``app.http``."""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """A failure with a stable machine code, an HTTP status and a human message."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal server error."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        # Extra top-level body fields a protocol needs beside the error (x402's v1 form).
        self.body = body or {}
        super().__init__(self.message)


class ValidationFailed(AppError):
    code = "VALIDATION_ERROR"
    status = 400
    default_message = "The request is not valid."


class InvalidDuration(AppError):
    code = "INVALID_DURATION"
    status = 400
    default_message = "Use 1d, 1w, or 4w."


class Unauthorized(AppError):
    code = "UNAUTHORIZED"
    status = 401
    default_message = "Missing API key."


class Forbidden(AppError):
    code = "FORBIDDEN"
    status = 403
    default_message = "This key may not do that."


class NotFound(AppError):
    code = "NOT_FOUND"
    status = 404
    default_message = "Not found."


class MethodNotAllowed(AppError):
    code = "METHOD_NOT_ALLOWED"
    status = 405
    default_message = "Method not allowed."


class Conflict(AppError):
    code = "CONFLICT"
    status = 409
    default_message = "Conflict."


class PayloadTooLarge(AppError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    default_message = "The request body is too large."


class RateLimited(AppError):
    code = "RATE_LIMITED"
    status = 429
    default_message = "Too many requests."


class InsufficientCredits(AppError):
    code = "INSUFFICIENT_CREDITS"
    status = 402
    default_message = "Credit balance too low."


class SpendingLimitExceeded(AppError):
    code = "SPENDING_LIMIT_EXCEEDED"
    status = 402
    default_message = "Spending limit reached."


class PaymentRequired(AppError):
    code = "PAYMENT_REQUIRED"
    status = 402
    default_message = "Payment required."


class PaymentInvalid(AppError):
    code = "PAYMENT_INVALID"
    status = 402
    default_message = "The payment failed verification."


class PaymentAlreadyUsed(AppError):
    code = "PAYMENT_ALREADY_USED"
    status = 402
    default_message = "This payment has already been used."


class UpstreamError(AppError):
    code = "UPSTREAM_ERROR"
    status = 502
    default_message = "The upstream provider failed."


class ServiceUnavailable(AppError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
    default_message = "A dependency is unavailable."


class BalanceLimitExceeded(Conflict):
    """A credit would take a balance past ``MAX_BALANCE_MICROS``; a distinct class so a caller
    that must not fail (a deposit being counted) can tell it from other conflicts."""

    default_message = "The credit would take the balance past its maximum."
