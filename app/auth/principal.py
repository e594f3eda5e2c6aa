"""The authenticated caller, as a frozen snapshot that can be cached between requests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from app.credentials.format import KeyKind


# eq=False: identity equality and hashing. A principal is an immutable snapshot handed out by
# the key cache, and memoised views key on it; hashing every field per request cost more than
# the lookup it served.
@dataclass(frozen=True, slots=True, eq=False)
class Principal:
    key_id: str
    kind: KeyKind
    agent_id: str | None
    platform_id: str | None
    scopes: frozenset[str]
    plan: str
    per_minute: int
    per_day: int | None
    status: str
    key_expires_at: datetime | None
    secret_expires_at: datetime | None
    agent_disabled: bool = False
    platform_disabled: bool = False
    # Enough of the key to answer ``/v1/api-keys/info`` without another database read.
    label: str | None = None
    hint: str = ""
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    period: str | None = None
    # Epoch seconds until which an active principal needs no further liveness check: the
    # per-request check is one float compare instead of building datetimes.
    live_until: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ends = [t.timestamp() for t in (self.key_expires_at, self.secret_expires_at) if t]
        live_until = min(ends, default=math.inf) if self.status == "active" else -math.inf
        object.__setattr__(self, "live_until", live_until)

    @property
    def actor_id(self) -> str:
        return self.key_id
