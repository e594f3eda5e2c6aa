"""Operator routes for parked work (``/admin/v1/attention``, audited)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Router, get, post
from litestar.params import Parameter

from app.attention import service
from app.attention.schemas import AttentionView, ResolveBody
from app.audit.service import Actor, record
from app.auth.guards import ADMIN, principal_of
from app.db.models.attention import KINDS, STATUSES, AttentionItem
from app.db.paging import Page, page_params
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.errors import ValidationFailed
from app.http.request_id import request_id_of

AnyRequest = Request[Any, Any, Any]


def attention_view(item: AttentionItem) -> AttentionView:
    return AttentionView(
        id=item.id, kind=item.kind, ref=item.ref, actor=item.actor, status=item.status,
        attempts=item.attempts, error_type=item.error_type, error=item.error,
        first_failed_at=rfc3339(item.first_failed_at) or "",
        last_failed_at=rfc3339(item.last_failed_at) or "",
        parked_at=rfc3339(item.parked_at), resolved_at=rfc3339(item.resolved_at),
        resolved_by=item.resolved_by,
    )


def _snapshot(item: AttentionItem) -> dict[str, Any]:
    return {"status": item.status, "kind": item.kind, "ref": item.ref}


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
    rows, next_cursor = await service.search(session, page_params(limit, cursor), kind=kind,
                                             status=status, ref=ref)
    return Page(data=[attention_view(item) for item in rows], next_cursor=next_cursor)


@get("/{item_id:str}")
async def get_attention(session: UnitOfWork, item_id: str) -> AttentionView:
    return attention_view(await service.get(session, item_id))


async def _resolve(
    request: AnyRequest, session: UnitOfWork, item_id: str, data: ResolveBody | None,
    action: str, change: Callable[[UnitOfWork, AttentionItem, str | None], Awaitable[Any]],
) -> AttentionView:
    admin = principal_of(request)
    item = await service.get(session, item_id)
    before = _snapshot(item)
    await change(session, item, admin.key_id)
    await record(session, Actor("admin", admin.key_id, None, request_id_of(request)),
                 f"attention.{action}", "attention", item.id, before=before,
                 after={**_snapshot(item), "reason": data.reason if data else ""})
    return attention_view(item)


@post("/{item_id:str}/retry", status_code=200, errors=(409,))
async def retry_attention(
    request: AnyRequest, session: UnitOfWork, item_id: str, data: ResolveBody | None = None,
) -> AttentionView:
    """Release parked work (after fixing its cause): its sweeper picks it up within seconds."""
    return await _resolve(request, session, item_id, data, "retry", service.retry)


@post("/{item_id:str}/dismiss", status_code=200, errors=(409,))
async def dismiss_attention(
    request: AnyRequest, session: UnitOfWork, item_id: str, data: ResolveBody | None = None,
) -> AttentionView:
    """Acknowledge parked work and leave it parked."""
    return await _resolve(request, session, item_id, data, "dismiss", service.dismiss)


router = Router(
    path="/admin/v1/attention",
    route_handlers=[list_attention, get_attention, retry_attention, dismiss_attention],
    before_request=ADMIN,
    tags=["admin"],
)
