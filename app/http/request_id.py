"""Headers every response carries: ``X-Request-ID`` and, on keyed routes, ``X-RateLimit-*``.

Done in an app-level ``before_send`` hook rather than a middleware: Litestar applies app
middleware per route, so responses produced before routing (unknown route 404, wrong method
405) would miss them. The id is assigned lazily on the scope by whoever needs it first (the
error handler writing ``requestId`` or the hook), so body and header always agree.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import Message, Scope

from app.http.rate_limit_headers import raw_rate_limit_headers

_SAFE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_STATE_KEY = "request_id"


def scope_state(scope: Scope) -> dict[str, Any]:
    """The request's own state dict on the ASGI scope (created when missing)."""
    state: dict[str, Any] | None = scope.get("state")
    if state is None:
        state = {}
        scope["state"] = state
    return state


def ensure_request_id(scope: Scope) -> str:
    """The request's id: the caller's ``X-Request-ID`` when it is safe to echo, else a new one."""
    state = scope_state(scope)
    current = state.get(_STATE_KEY)
    if isinstance(current, str):
        return current
    incoming = ""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            break
    # Not a ULID: request ids need no ordering, and this runs on every request.
    request_id = incoming if _SAFE.match(incoming) else f"req_{secrets.token_hex(12)}"
    state[_STATE_KEY] = request_id
    return request_id


async def add_response_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: stamp the id (and rate-limit state) on every HTTP response."""
    if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
        return
    # Raw header tuples: this runs on every response, and the mutable-headers wrapper costs
    # a linear search per assignment.
    raw = list(message.get("headers", ()))
    raw.append((b"x-request-id", ensure_request_id(scope).encode("latin-1")))
    extra = raw_rate_limit_headers(scope_state(scope))
    if extra:
        # Only Retry-After can already be there (set by the 429 itself); never send it twice.
        if extra[-1][0] == b"retry-after" and any(
            bytes(name).lower() == b"retry-after" for name, _ in raw
        ):
            extra = extra[:-1]
        raw.extend(extra)
    message["headers"] = raw


def request_id_of(request: Request[Any, Any, Any]) -> str:
    return ensure_request_id(request.scope)
