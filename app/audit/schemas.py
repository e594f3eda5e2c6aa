"""The audit log on the wire."""

from __future__ import annotations

import msgspec

from app.db.models.audit import AuditEntry
from app.db.types import rfc3339


class AuditView(msgspec.Struct, rename="camel"):
    id: str
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, object] | None
    after: dict[str, object] | None
    request_id: str | None
    created_at: str


def audit_view(entry: AuditEntry) -> AuditView:
    return AuditView(
        id=entry.id, actor_type=entry.actor_type, actor_id=entry.actor_id, action=entry.action,
        target_type=entry.target_type, target_id=entry.target_id, before=entry.before,
        after=entry.after, request_id=entry.request_id,
        created_at=rfc3339(entry.created_at) or "",
    )
