"""The SQL of the audit log."""

from __future__ import annotations

from sqlmodel import col, select

from app.db.models.audit import AuditEntry
from app.db.paging import PageParams
from app.db.queries import page, where_equal
from app.db.uow import UnitOfWork


async def search(
    session: UnitOfWork,
    params: PageParams,
    *,
    actor_id: str | None,
    action: str | None,
    target_id: str | None,
) -> tuple[list[AuditEntry], str | None]:
    """A page of entries, newest first; a filter left out (None) does not apply."""
    stmt = where_equal(
        select(AuditEntry),
        (col(AuditEntry.actor_id), actor_id),
        (col(AuditEntry.action), action),
        (col(AuditEntry.target_id), target_id),
    )
    return await page(session, stmt, col(AuditEntry.id), params)
