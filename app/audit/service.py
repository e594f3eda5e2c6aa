"""Audit trail of every admin and platform mutation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.audit import repository
from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.db.models.audit import AuditEntry
from app.db.paging import PageParams
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
    """Write who did what to which target, with the state before and after, in the caller's
    transaction (rolled back with the change it describes)."""
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
    """Entries newest first, by actor, action or target (an empty filter does not apply)."""
    return await repository.search(session, params, actor_id=actor_id or None,
                                   action=action or None, target_id=target_id or None)
