"""The ``X-RateLimit-*`` headers, remembered on the request scope for the header middleware."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request

from app.ratelimit.limiter import RateState

_STATE_KEY = "rate_limit"


def remember(request: Request[Any, Any, Any], state: RateState) -> None:
    request.scope.setdefault("state", {})[_STATE_KEY] = state


def raw_rate_limit_headers(scope_state: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """``X-RateLimit-*`` (and ``Retry-After`` when refused, always last) as ASGI byte pairs."""
    state = scope_state.get(_STATE_KEY)
    if not isinstance(state, RateState):
        return []
    headers = [
        (b"x-ratelimit-limit", b"%d" % state.limit),
        (b"x-ratelimit-remaining", b"%d" % state.remaining),
        (b"x-ratelimit-reset", b"%d" % state.reset_epoch),
    ]
    if not state.allowed:
        headers.append((b"retry-after", b"%d" % state.retry_after))
    return headers
