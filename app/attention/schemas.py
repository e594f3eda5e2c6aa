"""Wire shapes of the attention list (``/admin/v1/attention``)."""

from __future__ import annotations

import msgspec


class AttentionView(msgspec.Struct, rename="camel"):
    """Work that failed: what (``kind``, ``ref``), in which job, how often, with what."""

    id: str
    kind: str
    ref: str
    actor: str
    status: str
    attempts: int
    error_type: str
    error: str
    first_failed_at: str
    last_failed_at: str
    parked_at: str | None
    resolved_at: str | None
    resolved_by: str | None


class ResolveBody(msgspec.Struct, rename="camel"):
    """Why the operator retries or dismisses it (kept in the audit log)."""

    reason: str = msgspec.field(default="")

    def __post_init__(self) -> None:
        if len(self.reason) > 500:
            raise ValueError("reason is at most 500 characters")
