"""Operator routes for parked work (``/admin/v1/attention``, audited)."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.params import Parameter

from app.attention import service
from app.attention.schemas import AttentionView, ResolveBody
from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.db.models.attention import KINDS, STATUSES
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.errors import ValidationFailed


@get("/")
async def list_attention(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    kind: str | None = Parameter(default=None, max_length=30),
    status: str | None = Parameter(default=None, max_length=12),
    ref: str | None = Parameter(default=None, max_length=120),
) -> Page:
    """Work that failed, newest first: ``status=open`` is what waits for an operator."""
    if kind is not None and kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}.")
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}.")
    return await service.search(session, page_params(limit, cursor), kind=kind, status=status,
                                ref=ref)


@get("/{item_id:str}")
async def get_attention(session: UnitOfWork, item_id: str) -> AttentionView:
    """One item, open or resolved."""
    return await service.get(session, item_id)


@post("/{item_id:str}/retry", status_code=200, errors=(409,))
async def retry_attention(
    session: UnitOfWork, actor: Actor, item_id: str, data: ResolveBody | None = None,
) -> AttentionView:
    """Release parked work (after fixing its cause): its sweeper picks it up within seconds."""
    return await service.retry(session, item_id, actor, data.reason if data else "")


@post("/{item_id:str}/dismiss", status_code=200, errors=(409,))
async def dismiss_attention(
    session: UnitOfWork, actor: Actor, item_id: str, data: ResolveBody | None = None,
) -> AttentionView:
    """Acknowledge parked work and leave it parked."""
    return await service.dismiss(session, item_id, actor, data.reason if data else "")


router = Router(
    path="/admin/v1/attention",
    route_handlers=[list_attention, get_attention, retry_attention, dismiss_attention],
    before_request=ADMIN,
    tags=["admin"],
)
