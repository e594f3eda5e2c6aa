"""The ``X-RateLimit-*`` headers, remembered on the request scope for the header middleware."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request

from app.ratelimit.limiter import RateState

_STATE_KEY = "rate_limit"


def remember(request: Request[Any, Any, Any], state: RateState) -> None:
    request.scope.setdefault("state", {})[_STATE_KEY] = state


def headers_for_scope(scope_state: Mapping[str, Any]) -> dict[str, str]:
    state = scope_state.get(_STATE_KEY)
    if not isinstance(state, RateState):
        return {}
    headers = {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": str(state.reset_epoch),
    }
    if not state.allowed:
        headers["Retry-After"] = str(state.retry_after)
    return headers
