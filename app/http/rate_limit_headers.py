"""The ``X-RateLimit-*`` headers, remembered on the request scope for the header middleware."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request

_STATE_KEY = "rate_limit"


@dataclass(slots=True)
class RateState:
    """What the response headers report: the tightest window."""

    limit: int
    remaining: int
    reset_at: float
    allowed: bool

    @property
    def reset_epoch(self) -> int:
        return math.ceil(self.reset_at)

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))



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
