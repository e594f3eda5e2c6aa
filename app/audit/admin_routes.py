"""The audit log under ``/admin/v1`` (admin token)."""

from __future__ import annotations

from litestar import Router, get
from litestar.params import Parameter

from app.audit import service as audit
from app.audit.schemas import audit_view
from app.auth.guards import ADMIN
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork


@get("/audit-log")
async def audit_log(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    actor_id: str | None = Parameter(query="actorId", default=None),
    action: str | None = Parameter(default=None),
    target_id: str | None = Parameter(query="targetId", default=None),
) -> Page:
    """Every admin and platform mutation: who, what, when, before/after."""
    rows, next_cursor = await audit.search(
        session, page_params(limit, cursor), actor_id=actor_id, action=action, target_id=target_id
    )
    return Page(data=[audit_view(e) for e in rows], next_cursor=next_cursor)


router = Router(path="/admin/v1", route_handlers=[audit_log], before_request=ADMIN,
                tags=["admin"])
