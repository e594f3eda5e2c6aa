"""The OpenAPI document's error responses and security, derived once for every route.

Litestar documents a 400 in its own ``{status_code, detail, extra}`` shape, which passgate
never sends, and nothing else. :func:`document_routes` replaces that, route by route, from what
decides a route's failures:

- every route: 400 (the input check runs first everywhere) and 503 (database or Redis down);
- its access hook (:mod:`app.auth.guards`): 401, 403 and 429 for keyed routes, 429 for
  sign-up routes, the matching security scheme;
- a path parameter: 404; a request body: 413;
- what only the route knows, from its decorator: ``errors=(402, 409, ...)`` adds statuses,
  ``paid=True`` adds the x402 402 with its ``PAYMENT-REQUIRED`` header.

Every error is the same body (:class:`ErrorBody`), as :mod:`app.http.error_responses` sends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import SecurityRequirement
from litestar.routes import HTTPRoute

# Set by app.auth.guards on every access hook it builds (the kind of caller it admits);
# check_route_access and this module read it.
ACCESS_ATTR = "passgate_access"


class ErrorBody(msgspec.Struct, rename="camel"):
    """Every error passgate answers: a message for people, a stable code, the request id."""

    error: str
    code: str
    request_id: str
    details: Any | msgspec.UnsetType = msgspec.UNSET


class PaymentRequiredBody(ErrorBody):
    """A 402 of a paid route: the error, and the x402 v1 payment requirements beside it (the
    v2 requirements are in the ``PAYMENT-REQUIRED`` header)."""

    x402_version: int = 1
    accepts: list[dict[str, Any]] = msgspec.field(default_factory=list)


_MEANING = {
    400: "VALIDATION_ERROR: a malformed body, header, query or path value",
    401: "UNAUTHORIZED: a missing, unknown, revoked or expired key",
    402: "INSUFFICIENT_CREDITS or SPENDING_LIMIT_EXCEEDED",
    403: "FORBIDDEN: the key lacks the scope, its agent or platform is disabled, or it is "
         "used under another tenant",
    404: "NOT_FOUND: no such resource (or not the caller's)",
    409: "CONFLICT: the resource's state does not allow this",
    413: "PAYLOAD_TOO_LARGE: the body is over the configured limit",
    429: "RATE_LIMITED: retry after the seconds in the Retry-After header",
    502: "UPSTREAM_ERROR: the gateway's upstream failed or timed out",
    503: "SERVICE_UNAVAILABLE: a dependency (database, Redis, chain node) is down",
}
_PAID = (
    "PAYMENT_REQUIRED, PAYMENT_INVALID or PAYMENT_ALREADY_USED: pay with the requirements in "
    "the PAYMENT-REQUIRED header (base64 JSON, x402 v2) or in the body (x402 v1); on a gateway "
    "call with a key, INSUFFICIENT_CREDITS or SPENDING_LIMIT_EXCEEDED"
)
_BY_ACCESS = {
    "open": (),
    "signup": (429,),
    "key holder": (401, 403, 429),
    "optional key holder": (401, 403, 429),
    "key holder or signup": (401, 403, 429),
    "master": (401, 403, 429),
    "admin": (401, 403),
    # Open unless PASSGATE_METRICS_TOKEN is set: then that bearer token.
    "metrics": (401,),
}
_SECURITY: dict[str, list[SecurityRequirement]] = {
    # A wallet signed in with x402 sign-in-with-x acts as what it owns (app.siwx).
    "key holder": [{"apiKey": []}, {"signInWithX": []}],
    # Anonymous callers are served too (sign-up, or x402 per call).
    "optional key holder": [{"apiKey": []}, {"signInWithX": []}, {}],
    "key holder or signup": [{"apiKey": []}, {}],
    "master": [{"masterKey": []}],
    "admin": [{"adminToken": []}],
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes that work when nothing else does.
_NO_DEPENDENCIES = frozenset({"/v1/health/live"})


def document_routes(app: Litestar) -> None:
    """Give every route of ``app`` its error responses and security (before the document is
    first built: Litestar builds it lazily)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            access = getattr(handler.resolve_before_request(), ACCESS_ATTR, "open")
            statuses = set(_statuses(route, handler.http_methods, access, handler.opt))
            responses = {status: _error(status) for status in statuses}
            if handler.opt.get("paid"):
                responses[402] = _payment_required()
            handler.responses = {**responses, **(handler.responses or {})}
            if access in _SECURITY:
                handler.security = _SECURITY[access]


def _statuses(
    route: HTTPRoute, methods: Iterable[str], access: str, opt: dict[str, Any]
) -> Iterable[int]:
    yield 400
    if route.path not in _NO_DEPENDENCIES:
        yield 503
    yield from _BY_ACCESS[access]
    if route.path_parameters:
        yield 404
    if _BODY_METHODS.intersection(methods):
        yield 413
    yield from opt.get("errors", ())


def _error(status: int) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=_MEANING[status],
                        generate_examples=False)


def _payment_required() -> ResponseSpec:
    return ResponseSpec(data_container=PaymentRequiredBody, description=_PAID,
                        generate_examples=False)
