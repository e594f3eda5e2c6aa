"""Audit trail of every admin and platform mutation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.db.models.audit import AuditEntry
from app.db.paging import PageParams, apply, split
from app.db.uow import UnitOfWork
from app.ids import new_id


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: ``admin`` (token id), ``platform`` (master key id) or ``system``."""

    type: str
    id: str | None
    platform_id: str | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, principal: Principal, request_id: str | None) -> Actor:
        """The operator (admin token) or platform (master key) a request acts for."""
        if principal.platform_id is not None and principal.kind == KeyKind.MASTER:
            return cls("platform", principal.key_id, principal.platform_id, request_id)
        return cls("admin", principal.key_id, None, request_id)


async def record(
    session: UnitOfWork,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        id=new_id("aud"),
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        request_id=actor.request_id,
    )
    session.add(entry)
    return entry


async def search(
    session: UnitOfWork,
    params: PageParams,
    *,
    actor_id: str | None = None,
    action: str | None = None,
    target_id: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    stmt = select(AuditEntry)
    if actor_id:
        stmt = stmt.where(col(AuditEntry.actor_id) == actor_id)
    if action:
        stmt = stmt.where(col(AuditEntry.action) == action)
    if target_id:
        stmt = stmt.where(col(AuditEntry.target_id) == target_id)
    rows = (await session.exec(apply(stmt, col(AuditEntry.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda e: e.id)
