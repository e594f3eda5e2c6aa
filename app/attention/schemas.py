"""Wire shapes of the attention list (``/admin/v1/attention``), and the view of an item."""

from __future__ import annotations

import msgspec

from app.db.models.attention import AttentionItem
from app.db.types import rfc3339


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


def attention_view(item: AttentionItem) -> AttentionView:
    return AttentionView(
        id=item.id, kind=item.kind, ref=item.ref, actor=item.actor, status=item.status,
        attempts=item.attempts, error_type=item.error_type, error=item.error,
        first_failed_at=rfc3339(item.first_failed_at) or "",
        last_failed_at=rfc3339(item.last_failed_at) or "",
        parked_at=rfc3339(item.parked_at), resolved_at=rfc3339(item.resolved_at),
        resolved_by=item.resolved_by,
    )
